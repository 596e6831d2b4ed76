"""AutocastOptimWrapper: bfloat16 autocast on the model's device (CPU here), float32 step."""
import pytest
import torch
from mmengine.registry import OPTIM_WRAPPERS
from torch import nn

from mlla_mm.engine import AutocastOptimWrapper


def _wrapper(model, **kwargs):
    return OPTIM_WRAPPERS.build(dict(type='AutocastOptimWrapper',
                                     optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                                     **kwargs))


def test_forward_runs_in_bfloat16_and_step_in_float32():
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1))
    wrapper = _wrapper(model)
    assert isinstance(wrapper, AutocastOptimWrapper)
    before = [p.detach().clone() for p in model.parameters()]
    with wrapper.optim_context(model):
        assert torch.is_autocast_enabled('cpu')
        assert torch.get_autocast_dtype('cpu') == torch.bfloat16
        out = model(torch.randn(4, 8))
        assert out.dtype == torch.bfloat16
        loss = out.float().pow(2).mean()
    assert not torch.is_autocast_enabled('cpu')
    wrapper.update_params(loss)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_scan_backbone_under_autocast():
    """The backbones' scan kernels get bfloat16 activations: forward and backward run and
    the gradients are finite."""
    from mlla_mm.models.backbones import VMamba
    model = VMamba(arch=dict(preset='tiny', embed_dims=16, depths=[1, 1, 1, 1], d_state=1))
    wrapper = _wrapper(model)
    with wrapper.optim_context(model):
        outs = model(torch.randn(1, 3, 64, 64))
        loss = sum(o.float().mean() for o in outs)
    wrapper.backward(loss)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_float16_refused():
    model = nn.Linear(2, 2)
    with pytest.raises(ValueError, match='only bfloat16 tolerates'):
        _wrapper(model, dtype='float16')
    with pytest.raises(ValueError, match="unknown dtype 'half_float'"):
        _wrapper(model, dtype='half_float')

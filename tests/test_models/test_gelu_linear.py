"""gelu_linear (the MLP's fc2(GELU(h)) with GELU recomputed in the backward) against PyTorch's
own ops: same forward bit for bit, same gradients, less kept for the backward."""
import pytest
import torch
import torch.nn.functional as F

from mlla_mm.models.layers.gelu_linear import gelu_linear


def _reference(h, weight, bias):
    return F.linear(F.gelu(h), weight, bias)


def _inputs(dtype=torch.float32, shape=(2, 13, 24), out=8, bias=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(*shape, generator=g, dtype=dtype) * 2
    weight = torch.randn(out, shape[-1], generator=g, dtype=dtype) / shape[-1] ** 0.5
    b = torch.randn(out, generator=g, dtype=dtype) if bias else None
    return h, weight, b


def _grads(fn, h, weight, bias, dy):
    leaves = [t.detach().clone().requires_grad_() for t in (h, weight, bias) if t is not None]
    out = fn(*leaves) if bias is not None else fn(*leaves, None)
    out.backward(dy)
    return out.detach(), [t.grad for t in leaves]


@pytest.mark.parametrize('bias', [True, False])
@pytest.mark.parametrize('shape', [(2, 13, 24), (1, 5, 7, 24), (24, )])
def test_forward_and_gradients_match_pytorch(bias, shape):
    h, weight, b = _inputs(shape=shape, bias=bias)
    dy = torch.randn(*shape[:-1], 8)
    ours, our_grads = _grads(gelu_linear, h, weight, b, dy)
    ref, ref_grads = _grads(_reference, h, weight, b, dy)
    assert torch.equal(ours, ref)
    for mine, theirs in zip(our_grads, ref_grads):
        torch.testing.assert_close(mine, theirs, rtol=1e-6, atol=1e-6)


def test_gradcheck_float64():
    h, weight, b = (t.requires_grad_() for t in _inputs(torch.float64, shape=(3, 6), out=4))
    assert torch.autograd.gradcheck(gelu_linear, (h, weight, b))


def test_bfloat16_autocast_matches_pytorch():
    """Under CPU autocast the matmuls run in bfloat16 and the weight gradient comes back in
    the parameter's float32, as autograd does it."""
    h, weight, b = _inputs()
    dy = torch.randn(2, 13, 8).bfloat16()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        ours, our_grads = _grads(gelu_linear, h, weight, b, dy)
        ref, ref_grads = _grads(_reference, h, weight, b, dy)
    assert ours.dtype == ref.dtype == torch.bfloat16 and torch.equal(ours, ref)
    for mine, theirs in zip(our_grads, ref_grads):
        assert mine.dtype == theirs.dtype == torch.float32
        torch.testing.assert_close(mine, theirs, rtol=1e-2, atol=1e-2)


def test_keeps_only_its_input_for_backward():
    h, weight, b = _inputs(shape=(4, 64, 32))
    kept = {}

    def saved_bytes(fn):
        kept.clear()

        def pack(t):
            kept[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        leaves = [t.detach().clone().requires_grad_() for t in (h, weight, b)]
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn(*leaves)
        return sum(kept.values())

    ours, ref = saved_bytes(gelu_linear), saved_bytes(_reference)
    assert ours == h.numel() * 4 + weight.numel() * 4
    assert ref >= ours + h.numel() * 4   # PyTorch also keeps GELU(h)


def test_without_autograd_it_is_the_plain_ops():
    h, weight, b = _inputs()
    with torch.no_grad():
        assert torch.equal(gelu_linear(h, weight, b), _reference(h, weight, b))

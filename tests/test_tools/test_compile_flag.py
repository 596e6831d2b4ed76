"""tools/train.py --compile: the backbone compiled in place as one graph (launch.compile_backbone)."""
import pytest
import torch
from torch import nn

from mlla_mm.utils import launch


class _Segmentor(nn.Module):
    def __init__(self):
        super().__init__()
        from mmengine.registry import MODELS
        import mlla_mm  # noqa: F401
        self.backbone = MODELS.build(dict(type='MambaOut', drop_path_rate=0.0,
                                          arch=dict(dims=[8, 16, 16, 24], depths=[1, 1, 1, 1])))


def test_compile_backbone_keeps_names_and_values():
    model = _Segmentor().eval()
    keys = list(model.state_dict())
    images = torch.randn(1, 3, 32, 32)
    eager = model.backbone(images)
    launch.compile_backbone(model, backend='aot_eager')
    try:
        compiled = model.backbone(images)
    finally:
        torch._dynamo.reset()
    assert list(model.state_dict()) == keys          # checkpoints unchanged
    for a, b in zip(compiled, eager):
        torch.testing.assert_close(a, b)


def test_compile_needs_a_backbone():
    with pytest.raises(ValueError, match='has none'):
        launch.compile_backbone(nn.Linear(2, 2))


def test_train_parses_the_compile_flags():
    import importlib.util
    import os
    path = os.path.join(os.path.dirname(__file__), '..', '..', 'tools', 'train.py')
    spec = importlib.util.spec_from_file_location('train_tool', path)
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    args = train.parse_args(['configs/demo/upernet_mambaout_demo.py', '--compile',
                             '--compile-backend', 'aot_eager'])
    assert args.compile and args.compile_backend == 'aot_eager'

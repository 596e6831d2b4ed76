"""What the compile and export tests share: the backbones (small presets of
tests/test_models/test_backbone_contract.py), the one-thread fixture, the comparisons."""
import pytest
import torch

import mlla_mm  # noqa: F401  (registers the backbones)
from mlla_mm.models.layers.linear import onednn_linear

from test_models.test_backbone_contract import BACKBONES, SMALL

CLASSES = {cls.__name__: cls for cls in BACKBONES if cls.__name__ in SMALL}
NAMES = sorted(CLASSES)
# torch.export: traced at SIZE, run at SIZE and OTHER_SIZE. Multiples of 32, each stage's map
# at least 2 x 2 (a size 1 would be specialized), H != W (equal sizes would be duck-sized into
# one symbol).
SIZE, OTHER_SIZE = (64, 96), (96, 128)


# Tinier than SMALL where tracing cost is in the blocks count: VMUNet without decoder blocks
# (its expanding layers stay) and with one MHS head (MHSVMamba keeps two: 'C' and 'S').
TINIER = {'VMUNet': dict(arch=dict(embed_dims=8, depths=[1, 1, 1, 1], decoder_depths=[0, 0, 0, 0],
                                   heads=('C', )))}


def build(name, **overrides):
    """The first small preset of backbone ``name`` (or TINIER's), no stochastic depth, seeded
    weights."""
    torch.manual_seed(0)
    kwargs = dict(SMALL[name][0], drop_path_rate=0.0)
    kwargs.update(TINIER.get(name, {}), **overrides)
    return CLASSES[name](**kwargs)


def images(size, seed=1):
    return torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(seed))


def rel(ours, ref):
    """Max absolute difference relative to the reference's max magnitude."""
    return ((ours - ref).abs().max() / ref.abs().max().clamp_min(1e-12)).item()


@pytest.fixture(scope='module', autouse=True)
def one_thread(one_torch_thread):
    """One torch thread (tests/conftest.py); eager linear layers on ``F.linear``, the op the
    graphs hold (eager's oneDNN GEMM sums in another order, which these tiny models' 2-channel
    LayerNorms amplify to ~1e-4 in outputs); Dynamo's caches dropped after the module."""
    with onednn_linear(False):
        yield
    torch._dynamo.reset()

"""torch.export with dynamic H and W: every backbone, and a whole UperNet segmentor (CPU).

The scans stay one node each (``mlla_kernels::*`` operators, HRVMamba's DCNv4
``mlla_mm::dcnv4_numba``, whose fake implementations answer for symbolic shapes); the exported
program runs at the size it was traced at and at another, and matches eager. H and W are
multiples of 32 and at least 64: at 32 a late stage is one pixel high and the guards the trace
recorded (maps longer than 1) refuse it.
"""
import os.path as osp

import pytest
import torch
from torch.export import Dim

from deploy_cases import NAMES, OTHER_SIZE, SIZE, build, images, one_thread  # noqa: F401

UPERNET = osp.join(osp.dirname(__file__), '..', '..', 'configs', 'demo', 'upernet_mambaout_demo.py')
# no scan (nor DCNv4) in these presets
NO_OPERATOR = {'MambaOut', 'DemystifyNet', 'MLLA'}


def _dynamic_hw(name='x'):
    h, w = Dim('h', min=2, max=64), Dim('w', min=2, max=64)
    return {name: {2: 32 * h, 3: 32 * w}}


def _runs_like_eager(program, model):
    for seed, size in enumerate((SIZE, OTHER_SIZE)):
        x = images(size, seed=seed)
        with torch.no_grad():
            outs, refs = program.module()(x), model(x)
        if isinstance(refs, torch.Tensor):
            outs, refs = (outs, ), (refs, )
        assert [o.shape for o in outs] == [r.shape for r in refs]
        for out, ref in zip(outs, refs):
            torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('name', NAMES)
def test_backbone_exports_with_dynamic_height_and_width(name):
    model = build(name).eval()
    program = torch.export.export(model, (images(SIZE), ), strict=False,
                                  dynamic_shapes=_dynamic_hw())
    nodes = {str(n.target) for n in program.graph.nodes if n.op == 'call_function'}
    if name not in NO_OPERATOR:
        assert any(t.startswith(('mlla_kernels.', 'mlla_mm.')) for t in nodes), sorted(nodes)
    _runs_like_eager(program, model)


def test_upernet_segmentor_logits_export_with_dynamic_height_and_width():
    """The UperNet demo (MambaOut backbone shrunk) as mlla_mm.deploy.SegmentorLogits: logits
    at the input's size, the decode head's resize included."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    from mlla_mm.deploy import SegmentorLogits
    cfg = Config.fromfile(UPERNET)
    dims = [8, 16, 16, 24]
    cfg.model.backbone.arch = dict(dims=dims, depths=[1, 1, 1, 1])
    cfg.model.decode_head.update(in_channels=dims, channels=8)
    cfg.model.auxiliary_head = None
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = SegmentorLogits(MODELS.build(cfg.model)).eval()
    program = torch.export.export(model, (images(SIZE), ), strict=False,
                                  dynamic_shapes=_dynamic_hw('images'))
    _runs_like_eager(program, model)
    assert program.module()(images(OTHER_SIZE)).shape == (1, 8, *OTHER_SIZE)

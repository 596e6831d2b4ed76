"""configs/demystify/: one Mask R-CNN, UperNet and ImageNet config per row of the paper's tables.

The configs of a task differ only in ``model.backbone.design`` (checked), so the detector,
segmentor and classifier are built once per task and each row's backbone is built from its own
config and run inside them (``test_step``); this is the per-config check of
tests/test_configs.py at a fraction of the time (random initialisation tiled from a fixed pool,
as there: tiled_init.py).
"""
import copy
import os.path as osp

import pytest
import torch

from mlla_mm.models.layers import DESIGN_PRESETS, PAPER_ROWS

from test_configs import ROOT, _load, _small_batch
import tiled_init

TASKS = {'mask_rcnn': 'mmdet', 'upernet': 'mmseg', 'imagenet': 'mmpretrain'}


def _path(task, row):
    return f'configs/demystify/{task}_demystify_t_{row}.py'


def _registry(scope):
    pytest.importorskip(scope)
    from mmengine.registry import init_default_scope
    init_default_scope(scope)
    if scope == 'mmdet':
        from mmdet.registry import MODELS
    elif scope == 'mmseg':
        from mmseg.registry import MODELS
    else:
        from mmpretrain.registry import MODELS
    return MODELS


def _without_backbone(model_cfg):
    cfg = model_cfg.to_dict() if hasattr(model_cfg, 'to_dict') else dict(model_cfg)
    backbone = dict(cfg.pop('backbone'))
    for key in ('design', 'init_cfg'):
        backbone.pop(key, None)
    return cfg, backbone


pytestmark = pytest.mark.usefixtures('one_torch_thread')  # tests/conftest.py


@pytest.fixture(scope='module')
def shared_models():
    """task -> (config of the baseline row, its model built once), built on first use."""
    from mmengine.model import revert_sync_batchnorm
    built = {}

    def get(task):
        if task not in built:
            cfg = _load(_path(task, 'linear_attention'))
            model_cfg = copy.deepcopy(cfg.model)      # building edits the dicts (mmdet)
            model_cfg.backbone.pop('init_cfg', None)
            with tiled_init.tiled_random_init():   # the wiring is checked, not the weights' values
                model = revert_sync_batchnorm(_registry(TASKS[task]).build(model_cfg))
                model.init_weights()
            built[task] = (cfg, model.eval())
        return built[task]
    return get


def test_every_row_has_its_three_configs():
    for row in DESIGN_PRESETS:
        for task in TASKS:
            assert osp.isfile(osp.join(ROOT, _path(task, row))), _path(task, row)


@pytest.mark.parametrize('row', sorted(DESIGN_PRESETS))
@pytest.mark.parametrize('task', sorted(TASKS))
def test_row_config_builds_and_runs(task, row, shared_models, tiled_random_init):
    cfg = _load(_path(task, row))
    base_cfg, model = shared_models(task)
    scope = TASKS[task]
    assert cfg.default_scope == scope
    # the header cites the row and its published ImageNet top-1
    with open(osp.join(ROOT, _path(task, row))) as f:
        header = f.read().split('_base_')[0]
    paper = PAPER_ROWS[row]
    assert f'design {row!r}' in header
    if paper.top1 is not None:
        assert f'row "{paper.label}": published ImageNet-1k top-1 {paper.top1}' in header
    else:
        assert 'no published ImageNet top-1' in header
    # only the design (and the checkpoint it starts from) differs from the baseline row
    assert _without_backbone(cfg.model) == _without_backbone(base_cfg.model)
    assert cfg.model.backbone.design == row
    if task != 'imagenet':
        assert cfg.model.backbone.init_cfg == dict(
            type='Pretrained', prefix='backbone.',
            checkpoint=f'checkpoints/demystify_t_{row}_in1k.pth')
    cfg.model.backbone.pop('init_cfg', None)
    backbone = _registry(scope).build(cfg.model.backbone)
    backbone.init_weights()
    assert backbone.design == DESIGN_PRESETS[row]
    model.backbone = backbone.eval()
    with torch.no_grad():
        out = model.test_step(_small_batch(scope))
    assert len(out) == 1
    if scope == 'mmdet':
        assert out[0].pred_instances.bboxes.shape[-1] == 4
    elif scope == 'mmseg':
        assert out[0].pred_sem_seg.data.shape[-2:] == (32, 64)
    else:
        assert out[0].pred_score.shape == (1000, ) and torch.isfinite(out[0].pred_score).all()

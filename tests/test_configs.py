"""Every config under configs/ parses, builds its model, and runs a forward pass.

The forward pass checks the wiring (backbone widths -> neck -> heads -> outputs), so it runs on
a small input with few proposals; configs whose model is the same (a 3x schedule of a 1x one)
build it once. The weights' values do not matter here, so random initialisation is tiled from a
fixed pool (conftest.py ``tiled_random_init``: most of a full-size model's build time).
"""
import glob
import importlib
import os.path as osp

import numpy as np
import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(
    osp.relpath(p, ROOT) for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in p)


# configs/demystify/ has one config per paper row and task that differ only in the backbone's
# design: tests/test_configs_demystify.py builds and runs each of them around one shared head.
ROW_CONFIGS = {c for c in CONFIGS if '_demystify_t_' in osp.basename(c)}


def _load(path):
    from mmengine.config import Config
    return Config.fromfile(osp.join(ROOT, path))


def test_there_are_configs_for_every_model():
    names = {osp.basename(c) for c in CONFIGS}
    expected = {'mask_rcnn_mlla_t.py', 'mask_rcnn_mlla_t_3x.py', 'mask_rcnn_mlla_s.py',
                'mask_rcnn_mlla_s_3x.py', 'mask_rcnn_mlla_b.py', 'upernet_mlla_t.py',
                'upernet_mlla_s.py', 'upernet_mlla_b.py', 'mask_rcnn_mlla_demo.py',
                'upernet_mlla_demo.py'}
    assert expected <= names, sorted(expected - names)


@pytest.mark.parametrize('path', CONFIGS)
def test_config_parses(path):
    cfg = _load(path)
    assert cfg.default_scope in ('mmdet', 'mmseg', 'mmpretrain', 'mmpose')
    assert 'mlla_mm' in cfg.custom_imports['imports'], 'stock tools need custom_imports'
    from mlla_mm.registry import registered
    assert cfg.model.backbone.type in {cls.__name__ for cls in registered('MODELS')}


def _small_batch(scope, size=(32, 64)):
    h, w = size
    img = torch.randint(0, 255, (3, h, w), dtype=torch.uint8)
    meta = dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w), scale_factor=(1.0, 1.0),
                batch_input_shape=(h, w))
    if scope == 'mmdet':
        from mmdet.structures import DetDataSample
        sample = DetDataSample(metainfo=meta)
    elif scope == 'mmpretrain':
        from mmpretrain.structures import DataSample
        sample = DataSample(metainfo=meta)
    elif scope == 'mmpose':   # a person crop: what the top-down model decodes back with
        from mmengine.structures import InstanceData
        from mmpose.datasets.datasets.utils import parse_pose_metainfo
        from mmpose.structures import PoseDataSample
        coco = parse_pose_metainfo(dict(from_file='configs/_base_/datasets/coco.py'))
        sample = PoseDataSample(metainfo=dict(
            meta, input_size=(w, h), input_center=np.array([w / 2, h / 2]),
            input_scale=np.array([w, h]), flip_indices=coco['flip_indices']))
        sample.gt_instances = InstanceData(bboxes=np.array([[0.0, 0.0, w, h]]),
                                           bbox_scores=np.ones(1))
    else:
        from mmseg.structures import SegDataSample
        sample = SegDataSample(metainfo=meta)
    return dict(inputs=[img], data_samples=[sample])


def _few_proposals(model_cfg):
    """Cheaper detector forward, same modules: 50 proposals, 10 detections."""
    test_cfg = model_cfg.get('test_cfg') or {}
    if isinstance(test_cfg.get('rpn'), dict):
        test_cfg['rpn'].update(nms_pre=50, max_per_img=50)
    if isinstance(test_cfg.get('rcnn'), dict):
        test_cfg['rcnn']['max_per_img'] = 10


_BUILT = {}   # repr(model config) -> the config that built and ran it


@pytest.mark.parametrize('path', sorted(set(CONFIGS) - ROW_CONFIGS))
def test_model_builds_and_runs(path, tiled_random_init):
    cfg = _load(path)
    pytest.importorskip(cfg.default_scope)
    key = repr(cfg.model.to_dict())
    if key in _BUILT:
        return   # the same model as _BUILT[key], which was built and ran
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.default_scope)
    MODELS = importlib.import_module(f'{cfg.default_scope}.registry').MODELS
    cfg.model.backbone.pop('init_cfg', None)      # no network, no checkpoint files in tests
    _few_proposals(cfg.model)
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    model.init_weights()
    model.eval()
    # pose: one person crop, at a quarter of the configs' smallest input (64x48)
    size = (64, 48) if cfg.default_scope == 'mmpose' else (32, 64)
    with torch.no_grad():
        out = model.test_step(_small_batch(cfg.default_scope, size))
    assert len(out) == 1
    if cfg.default_scope == 'mmdet':
        assert out[0].pred_instances.bboxes.shape[-1] == 4
    elif cfg.default_scope == 'mmpretrain':
        assert out[0].pred_score.shape == (cfg.model.head.num_classes, )
    elif cfg.default_scope == 'mmpose':
        keypoints = out[0].pred_instances.keypoints
        assert keypoints.shape == (1, 17, 2) and np.isfinite(keypoints).all()
        assert out[0].pred_instances.keypoint_scores.shape == (1, 17)
    else:
        assert out[0].pred_sem_seg.data.shape[-2:] == (32, 64)
    _BUILT[key] = path


def test_demo_config_classes_match_generator():
    from mlla_mm.datasets import demo_data
    det = _load('configs/demo/_base_/demo_coco.py')
    seg = _load('configs/demo/_base_/demo_ade20k.py')
    assert tuple(det.classes) == tuple(demo_data.DEMO_DET_CLASSES)
    assert tuple(seg.classes) == tuple(demo_data.DEMO_SEG_CLASSES)
    assert [list(p) for p in seg.palette] == [list(p) for p in demo_data.DEMO_SEG_PALETTE]


def test_cfg_options_data_root_rebases_loaders_and_evaluator(tmp_path):
    """--cfg-options data_root=DIR / --data-root DIR point a COCO config at new data."""
    from mlla_mm.datasets.demo_data import generate_coco_instance
    from mlla_mm.utils import launch
    root = tmp_path / 'coco'
    generate_coco_instance(str(root), num_train=2, num_val=1, image_size=(64, 64),
                           object_size=(16, 30))
    cfg = launch.load_config(osp.join(ROOT, 'configs/mask_rcnn_mlla_t.py'),
                             {'data_root': str(root)})
    assert cfg.train_dataloader.dataset.data_root == str(root) + '/'
    assert cfg.val_evaluator.ann_file == str(root / 'annotations/instances_val2017.json')
    # the generated data has 4 classes: class list and heads follow the annotation file
    assert cfg.model.roi_head.bbox_head.num_classes == 4
    assert cfg.train_dataloader.dataset.metainfo['classes'] == ('circle', 'square', 'triangle',
                                                                'star')

"""The pose configs: one codec per config (model decoder, training target, crop size agree),
upstream's pose layout of HRVMamba, and what the tools do with them (scope, --data-root)."""
import glob
import os.path as osp

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
POSE_CONFIGS = sorted(osp.relpath(p, ROOT) for p in glob.glob(
    osp.join(ROOT, 'configs', '**', 'td-hm_*.py'), recursive=True))


def _load(path, options=None):
    from mlla_mm.utils import launch
    return launch.load_config(osp.join(ROOT, path), options)


def test_there_are_the_upstream_pose_configs():
    names = {osp.basename(p) for p in POSE_CONFIGS}
    assert {'td-hm_hrvmamba_t_coco-256x192.py', 'td-hm_hrvmamba_s_coco-256x192.py',
            'td-hm_hrvmamba_b_coco-256x192.py', 'td-hm_hrvmamba_s_coco-384x288.py',
            'td-hm_hrvmamba_b_coco-384x288.py', 'td-hm_hrvmamba_demo.py'} <= names


@pytest.mark.parametrize('path', POSE_CONFIGS)
def test_one_codec_per_config(path):
    """The head decodes with the codec the targets were made with, at the crop size the
    pipelines warp to: a 384x288 config that kept one 256x192 piece would train silently
    wrong."""
    cfg = _load(path)
    codec = cfg.codec
    assert cfg.model.head.decoder == codec
    width, height = codec.input_size
    assert tuple(codec.heatmap_size) == (width // 4, height // 4)   # HeatmapHead: stride 4
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        pipeline = cfg[loader].dataset.pipeline
        affine = [t for t in pipeline if t.type == 'TopdownAffine']
        assert [tuple(t.input_size) for t in affine] == [tuple(codec.input_size)], loader
        targets = [t.encoder for t in pipeline if t.type == 'GenerateTarget']
        assert targets == ([codec] if loader == 'train_dataloader' else []), loader


@pytest.mark.parametrize('path', POSE_CONFIGS)
def test_upstream_pose_layout(path):
    cfg = _load(path)
    backbone = cfg.model.backbone
    assert cfg.default_scope == 'mmpose' and 'mlla_mm' in cfg.custom_imports.imports
    assert backbone.type == 'HRVMamba' and tuple(backbone.out_indices) == (0, )
    assert backbone.with_out_norms is False and backbone.esinb_drop_path is False
    arch = backbone.arch
    channels = (arch['channels'] if isinstance(arch, dict) else
                {'tiny': 16, 'small': 32, 'base': 80}[arch])
    c0 = channels[0] if isinstance(channels, (list, tuple)) else channels
    assert cfg.model.head.in_channels == c0


def test_tools_accept_pose_configs():
    from mlla_mm.utils import launch
    cfg = _load('configs/td-hm_hrvmamba_s_coco-256x192.py')
    assert launch.codebase_of(cfg) == 'mmpose'
    cfg.default_scope = 'mmaction'
    with pytest.raises(ValueError, match="mmpose"):
        launch.codebase_of(cfg)


def test_data_root_rebases_pose_loaders_evaluator_and_detections(tmp_path):
    """--data-root DIR (or --cfg-options data_root=DIR) points a COCO keypoints config at
    other data: loaders, the evaluator's annotation file and the person detections move
    with it; where DIR has no detections file, testing falls back to the ground-truth boxes."""
    from mlla_mm.datasets.demo_pose import generate_coco_pose
    root = tmp_path / 'coco'
    generate_coco_pose(str(root), num_train=1, num_val=1, image_size=(96, 96),
                       person_height=(40, 90))
    cfg = _load('configs/td-hm_hrvmamba_t_coco-256x192.py', {'data_root': str(root)})
    assert cfg.train_dataloader.dataset.data_root == str(root) + '/'
    assert cfg.test_dataloader.dataset.data_root == str(root) + '/'
    assert cfg.test_evaluator.ann_file == str(root / 'annotations/person_keypoints_val2017.json')
    assert cfg.val_dataloader.dataset.bbox_file is None   # the demo data names it otherwise
    # with the file of the same name under the new root, the detections are used from there
    (root / 'person_detection_results' / 'COCO_val2017_detections_AP_H_56_person.json'
     ).write_text('[]')
    cfg = _load('configs/td-hm_hrvmamba_t_coco-256x192.py', {'data_root': str(root)})
    assert cfg.val_dataloader.dataset.bbox_file == str(
        root / 'person_detection_results' / 'COCO_val2017_detections_AP_H_56_person.json')

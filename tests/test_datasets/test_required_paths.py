"""A missing dataset is named before anything is built (mlla_mm/datasets/required_paths.py,
tools/train.py and tools/test.py): the real COCO, ADE20K, COCO-keypoints (mmpose) and ISIC
configs without their data, and the same configs with --data-root pointing at generated data. (The command line itself, exit
status and no traceback: tests/e2e/test_missing_data.py.)"""
import importlib.util
import os
import os.path as osp

import pytest
from mmengine.config import Config

from mlla_mm.datasets import required_paths
from mlla_mm.datasets.required_paths import DatasetPaths, missing_paths
from mlla_mm.utils import launch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
COCO = osp.join(ROOT, 'configs', 'mask_rcnn_mlla_t.py')
ADE20K = osp.join(ROOT, 'configs', 'upernet_vmamba_t.py')
POSE = osp.join(ROOT, 'configs', 'td-hm_hrvmamba_t_coco-256x192.py')
ISIC = osp.join(ROOT, 'configs', 'vmunet_mhs_3h_isic17.py')


@pytest.fixture
def in_empty_dir(tmp_path, monkeypatch):
    """The configs' relative data roots (data/coco/, data/ade/...) are missing here."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _tool(name):
    spec = importlib.util.spec_from_file_location(name, osp.join(ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_coco_config_without_data_names_the_root(in_empty_dir):
    (missing, ) = missing_paths(Config.fromfile(COCO), ('train', 'val'))
    assert missing.path == 'data/coco/' and missing.kind == 'folder'
    assert str(missing) == ('data/coco/: no such folder (data_root of train_dataloader and '
                            'val_dataloader, CocoDataset)')


def test_coco_files_and_folders_under_an_existing_root(in_empty_dir):
    os.makedirs('data/coco/annotations')
    open('data/coco/annotations/instances_train2017.json', 'w').close()
    os.makedirs('data/coco/val2017')
    missing = {m.path: m for m in missing_paths(Config.fromfile(COCO), ('train', 'val'))}
    assert sorted(missing) == ['data/coco/annotations/instances_val2017.json',
                               'data/coco/train2017/']
    # the val annotation file is read by the dataset and by CocoMetric: one line, both uses
    assert [use[:2] for use in missing['data/coco/annotations/instances_val2017.json'].uses] == [
        ('ann_file', 'val_dataloader'), ('ann_file', 'val_evaluator')]
    assert missing['data/coco/train2017/'].kind == 'folder'


def test_only_the_loops_the_tool_runs(in_empty_dir):
    cfg = Config.fromfile(COCO)
    os.makedirs('data/coco')

    def owners(loaders):
        return {use[1] for m in missing_paths(cfg, loaders) for use in m.uses}

    assert owners(('test', )) == {'test_dataloader', 'test_evaluator'}
    assert owners(('train', 'val')) == {'train_dataloader', 'val_dataloader', 'val_evaluator'}
    cfg.val_cfg = None   # no validation: its data is not needed for training
    assert owners(('train', 'val')) == {'train_dataloader'}


def test_ade20k_config_folders(in_empty_dir):
    cfg = Config.fromfile(ADE20K)
    root = cfg.train_dataloader.dataset.data_root
    assert [m.path for m in missing_paths(cfg, ('train', 'val'))] == [root]
    os.makedirs(osp.join(root, 'images', 'training'))
    assert [m.path for m in missing_paths(cfg, ('train', ))] == [
        osp.join(root, 'annotations/training')]


def test_pose_config_files_folders_and_person_detections(in_empty_dir):
    """mmpose's CocoDataset (default_scope mmpose): its row, not mmdet's; bbox_file is read
    as written (the config spells it under data/coco/), not joined with data_root."""
    cfg = Config.fromfile(POSE)
    assert [str(m) for m in missing_paths(cfg, ('train', 'val'))] == [
        'data/coco/: no such folder (data_root of train_dataloader and val_dataloader, '
        'CocoDataset)']
    for folder in ('annotations', 'train2017', 'val2017'):
        os.makedirs(osp.join('data/coco', folder))
    for split in ('train', 'val'):
        open(f'data/coco/annotations/person_keypoints_{split}2017.json', 'w').close()
    (missing, ) = missing_paths(cfg, ('train', 'val'))
    assert str(missing) == ('data/coco/person_detection_results/COCO_val2017_detections_AP_H_56'
                            '_person.json: no such file (bbox_file of val_dataloader, '
                            'CocoDataset)')
    # without detections (testing on the ground-truth boxes) nothing is missing
    cfg.val_dataloader.dataset.bbox_file = None
    assert missing_paths(cfg, ('train', 'val')) == []


def test_isic_config_folders(in_empty_dir):
    cfg = Config.fromfile(ISIC)
    root = cfg.train_dataloader.dataset.data_root
    assert [m.path for m in missing_paths(cfg, ('train', 'val'))] == [root]
    os.makedirs(osp.join(root, 'train', 'images'))
    assert [str(m) for m in missing_paths(cfg, ('train', 'val'))] == [
        f'{root}/train/masks: no such folder (data_prefix.seg_map_path of train_dataloader, '
        'ISICDataset)',
        f'{root}/val/images: no such folder (data_prefix.img_path of val_dataloader, '
        'ISICDataset)',
        f'{root}/val/masks: no such folder (data_prefix.seg_map_path of val_dataloader, '
        'ISICDataset)']


def test_rows_follow_the_codebase():
    """'CocoDataset' is mmdet's in a detection config and mmpose's in a pose config; a
    scope in the type, or a class, says which."""
    mmdet_row, pose_row = required_paths.DATASET_PATHS['CocoDataset'], \
        required_paths.DATASET_PATHS['mmpose.CocoDataset']
    assert mmdet_row.files_as_written == () and pose_row.files_as_written == ('bbox_file', )
    assert required_paths.paths_of_type('CocoDataset', 'mmdet') is mmdet_row
    assert required_paths.paths_of_type('CocoDataset', 'mmpose') is pose_row
    assert required_paths.paths_of_type('mmpose.CocoDataset') is pose_row
    assert required_paths.paths_of_type('mmdet.CocoDataset', 'mmpose') is mmdet_row
    assert required_paths.paths_of_type('ISICDataset', 'mmseg') is \
        required_paths.DATASET_PATHS['ISICDataset']
    mmpose = pytest.importorskip('mmpose.datasets')
    assert required_paths.paths_of_type(mmpose.CocoDataset) is pose_row


def test_generated_data_passes(demo_coco, demo_ade20k, demo_coco_pose, demo_isic, in_empty_dir):
    """--data-root at the generated sets: nothing missing (the pose configs' person
    detections follow the root: demo_pose writes its own detection file)."""
    for config, root in ((COCO, demo_coco), (ADE20K, demo_ade20k), (POSE, demo_coco_pose),
                         (ISIC, demo_isic)):
        cfg = launch.load_config(config, dict(data_root=root))
        assert missing_paths(cfg, ('train', 'val', 'test')) == [], config


def test_a_new_dataset_type_is_one_row(tmp_path, monkeypatch):
    """What a new task's dataset does: one row; types without a row get ann_file checked."""
    monkeypatch.setitem(required_paths.DATASET_PATHS, 'LesionDataset',
                        DatasetPaths(files=(), folders=('data_prefix.img_path', )))
    (tmp_path / 'images').mkdir()

    def config(type_name):
        dataset = dict(type=type_name, data_root=str(tmp_path), ann_file='split.txt',
                       data_prefix=dict(img_path='images', seg_map_path='masks'))
        return Config(dict(train_cfg=dict(type='IterBasedTrainLoop'),
                           train_dataloader=dict(dataset=dict(type='RepeatDataset', times=2,
                                                              dataset=dataset))))

    assert missing_paths(config('LesionDataset'), ('train', )) == []   # its row: the folder
    (missing, ) = missing_paths(config('mmseg.OtherDataset'), ('train', ))
    assert missing.path == osp.join(str(tmp_path), 'split.txt') and missing.kind == 'file'


def test_train_py_exits_with_one_message_before_building(in_empty_dir, capsys):
    """In-process: SystemExit with the message; nothing of the model was built."""
    with pytest.raises(SystemExit) as exit_info:
        _tool('train').main([COCO, '--work-dir', str(in_empty_dir / 'w')])
    message = str(exit_info.value.code)
    assert message.startswith(f'error: the dataset of {COCO} is not there')
    for hint in ('data/coco/: no such folder', '--data-root', 'README "Datasets"',
                 f'tools/check_dataset.py {COCO} --data-root DIR'):
        assert hint in message, hint
    assert not (in_empty_dir / 'w').exists(), 'no work dir: the runner was not built'

    with pytest.raises(SystemExit) as exit_info:
        _tool('test').main([ADE20K, 'none'])
    assert 'data/ade/ADEChallengeData2016: no such folder (data_root of test_dataloader, ' \
           'ADE20KDataset)' in str(exit_info.value.code)

    for config, root in ((POSE, 'data/coco/'), (ISIC, 'data/isic2017')):
        with pytest.raises(SystemExit) as exit_info:
            _tool('train').main([config])
        assert f'{root}: no such folder (data_root of train_dataloader' in \
            str(exit_info.value.code), config

    with pytest.raises(SystemExit) as exit_info:
        _tool('train').main([COCO, '--data-root', 'nowhere'])
    assert "--data-root 'nowhere' is not a directory" in str(exit_info.value.code)

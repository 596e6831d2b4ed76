"""A missing dataset is named before anything is built (mlla_mm/datasets/required_paths.py,
tools/train.py and tools/test.py): the real COCO and ADE20K configs without their data, and
the same configs with --data-root pointing at generated data. (The command line itself, exit
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


def test_generated_data_passes(demo_coco, demo_ade20k, in_empty_dir):
    for config, root in ((COCO, demo_coco), (ADE20K, demo_ade20k)):
        cfg = launch.load_config(config, dict(data_root=root))
        assert missing_paths(cfg, ('train', 'val', 'test')) == []


def test_a_new_dataset_type_is_one_row(tmp_path, monkeypatch):
    """What the pose/medical datasets do: one row; types without a row get ann_file checked."""
    monkeypatch.setitem(required_paths.DATASET_PATHS, 'ISICDataset',
                        DatasetPaths(files=(), folders=('data_prefix.img_path', )))
    (tmp_path / 'images').mkdir()

    def config(type_name):
        dataset = dict(type=type_name, data_root=str(tmp_path), ann_file='split.txt',
                       data_prefix=dict(img_path='images', seg_map_path='masks'))
        return Config(dict(train_cfg=dict(type='IterBasedTrainLoop'),
                           train_dataloader=dict(dataset=dict(type='RepeatDataset', times=2,
                                                              dataset=dataset))))

    assert missing_paths(config('ISICDataset'), ('train', )) == []   # its row: the folder
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

    with pytest.raises(SystemExit) as exit_info:
        _tool('train').main([COCO, '--data-root', 'nowhere'])
    assert "--data-root 'nowhere' is not a directory" in str(exit_info.value.code)

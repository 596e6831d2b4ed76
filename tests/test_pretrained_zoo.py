"""The table of official checkpoints agrees with the configs and the backbones."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import MODELS

import mlla_mm  # noqa: F401
from mlla_mm.utils.pretrained_zoo import (IMAGENET_TRUNK, OFFICIAL_CHECKPOINTS, by_file,
                                          select)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _pretrained_backbones():
    for path in sorted(glob.glob(osp.join(ROOT, 'configs', '*.py'))):
        backbone = Config.fromfile(path).model.backbone
        init = backbone.get('init_cfg') or {}
        if init.get('type') == 'Pretrained':
            yield osp.basename(path), backbone, init['checkpoint']


def test_every_checkpoint_a_config_names_is_in_the_table():
    table = by_file()
    seen = 0
    for config, backbone, checkpoint in _pretrained_backbones():
        assert checkpoint.startswith('checkpoints/'), (config, checkpoint)
        entry = table.get(osp.basename(checkpoint))
        assert entry is not None, f'{config}: {checkpoint} has no row in pretrained_zoo'
        assert entry.backbone == backbone.type, config
        cls = MODELS.get(backbone.type)
        assert cls.arch_zoo[entry.arch] == cls.arch_zoo[backbone.arch.lower()], config
        seen += 1
    assert seen >= 20


def test_rows_name_registered_presets_and_unique_files():
    files = [c.file for c in OFFICIAL_CHECKPOINTS]
    assert len(files) == len(set(files))
    for entry in OFFICIAL_CHECKPOINTS:
        assert entry.url.startswith('https://') and entry.file.endswith('.pth')
        cls = MODELS.get(entry.backbone)
        if cls is None:   # e.g. MambaOut rows before the backbone exists in this checkout
            continue
        assert entry.arch in cls.arch_zoo, entry
    assert {c.file for c in select(['mambaout'])} == {
        f'mambaout_{s}.pth' for s in ('femto', 'kobe', 'tiny', 'small', 'base')}


@pytest.mark.parametrize('backbone', sorted(IMAGENET_TRUNK))
def test_trunk_has_no_dense_only_modules(backbone):
    """The verification build has none of the modules ImageNet checkpoints lack."""
    small = dict(MLLA=dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1]),
                 VMamba=dict(preset='tiny', embed_dims=16, depths=[1, 1, 1, 1]),
                 Vim=dict(embed_dims=32, depth=4),
                 MambaOut=dict(dims=[8, 16, 24, 32], depths=[1, 1, 1, 1]),
                 HRVMamba=dict(stage1_channels=8, channels=[16, 16, 16, 16], num_modules=(1, 1, 1),
                               num_blocks=1))[backbone]
    keys = MODELS.build(dict(type=backbone, arch=small, **IMAGENET_TRUNK[backbone])).state_dict()
    dense_only = [k for k in keys if k.split('.')[0] in
                  {f'{p}{i}' for p in ('norm', 'outnorm', 'fpn') for i in range(5)}]
    assert dense_only == []


def test_select_errors_name_the_choices():
    with pytest.raises(KeyError, match=r"'resnet50' names no official checkpoint.*MLLA_T\.pth"):
        select(['resnet50'])
    assert [c.file for c in select(['MLLA_T', 'mlla_t.pth'])] == ['MLLA_T.pth']

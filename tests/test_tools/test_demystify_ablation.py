"""tools/analysis/demystify_ablation.py: the config of a row (a row trained and evaluated:
tests/e2e/test_demystify_ablation_run.py)."""
import importlib.util
import os.path as osp

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(ROOT, 'tools', 'analysis', 'demystify_ablation.py')


def _script():
    spec = importlib.util.spec_from_file_location('demystify_ablation', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_row_config_is_the_demo_on_an_iteration_budget(demo_coco):
    tool = _script()
    args = tool.parse_args(['--iters', '7', '--batch', '3', '--kernel-backend', 'naive'])
    cfg = tool.row_config(args, 'mamba', demo_coco)
    assert cfg.model.backbone.type == 'DemystifyNet' and cfg.model.backbone.design == 'mamba'
    assert cfg.model.backbone.kernel_backend == 'naive'
    assert cfg.train_cfg == dict(type='IterBasedTrainLoop', max_iters=7, val_interval=7)
    assert cfg.train_dataloader.batch_size == 3
    assert cfg.train_dataloader.dataset.data_root == demo_coco + '/'
    assert cfg.val_evaluator.ann_file == osp.join(demo_coco, 'annotations',
                                                  'instances_val2017.json')
    with pytest.raises(SystemExit):
        tool.parse_args(['--rows', 'mamba2'])

"""tools/analysis/demystify_ablation.py: every row trains and is evaluated in its own process."""
import importlib.util
import json
import os.path as osp

import pytest

from tool_runner import PY, ROOT, run_tool

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


def test_mini_ablation_trains_and_evaluates_a_row(demo_coco, tmp_path):
    """The recurrent (selective-scan) row through mmdet training and CocoMetric."""
    run_tool([PY, SCRIPT, '--rows', 'forget_gate', '--iters', '2', '--batch', '2',
              '--data-root', demo_coco, '--work-dir', str(tmp_path)])
    table = (tmp_path / 'ablation.md').read_text()
    assert 'Toy-scale harness check, not a scientific result' in table
    assert '| `forget_gate` | 78.4 |' in table
    (row, ) = json.loads((tmp_path / 'ablation.json').read_text())['results']
    assert row['status'] == 'ok', row
    assert row['s_per_iter'] > 0 and row['peak_rss_mb'] > 100
    assert all(0 <= row[k] <= 1 for k in ('bbox_mAP', 'bbox_mAP_50', 'segm_mAP', 'segm_mAP_50'))

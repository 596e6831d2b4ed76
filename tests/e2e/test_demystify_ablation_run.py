"""tools/analysis/demystify_ablation.py: every row trains and is evaluated in its own process."""
import json
import os.path as osp

from tool_runner import PY, ROOT, run_tool

SCRIPT = osp.join(ROOT, 'tools', 'analysis', 'demystify_ablation.py')


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

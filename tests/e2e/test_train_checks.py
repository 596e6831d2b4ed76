"""tools/train.py beyond one process and good data: a 2-process distributed run on gloo
(tools/dist_train.sh), training that skips bad samples naming them, a NaN loss that stops
training before any checkpoint."""
import glob
import os.path as osp

import pytest

from e2e_runs import DET, DET_OPTS, NO_VAL, train, workers
from tool_runner import PY, run, run_tool

pytest.importorskip('mmdet')


def test_dist_train_two_processes_on_cpu(demo_coco, tmp_path):
    """bash tools/dist_train.sh <demo config> 2: torchrun, gloo, no CUDA needed."""
    work_dir = str(tmp_path / 'dist')
    out = run_tool(['bash', 'tools/dist_train.sh', DET, '2', '--work-dir', work_dir,
                    '--data-root', demo_coco, '--cfg-options', 'train_cfg.max_epochs=1',
                    'train_cfg.val_interval=1', *DET_OPTS, *workers(0)],
                   env={'PORT': '29517', 'OMP_NUM_THREADS': '1'})
    assert 'Distributed training: True' in out, out[-3000:]
    assert 'GPU number: 2' in out, 'mmengine reports the world size as "GPU number"'
    assert "'backend': 'gloo'" in out
    assert 'coco/bbox_mAP' in out, 'validation gathers the results of both processes'
    assert osp.isfile(osp.join(work_dir, 'epoch_1.pth'))


def test_training_skips_bad_samples_naming_them(bad_coco, tmp_path):
    """(The segmentation case, a label beyond the classes: the UperNet runs below.)"""
    root, broken = bad_coco
    out = train(DET, tmp_path, root, [*DET_OPTS, *NO_VAL, *workers(0), 'train_cfg.max_epochs=1'])
    for kind in ('truncated JPEG', 'missing file'):
        assert f'{broken[kind]}), which cannot be used' in out, (kind, out[-4000:])
    assert osp.isfile(tmp_path / 'epoch_1.pth')


def test_nan_loss_stops_before_any_checkpoint(demo_coco, tmp_path):
    """A NaN injected into one loss term of the demo Mask R-CNN (its weight) through the
    command line: training stops at iteration 1, naming the term; no checkpoint."""
    code, out = run([PY, 'tools/train.py', DET, '--work-dir', str(tmp_path), '--data-root',
                     demo_coco, '--cfg-options', *DET_OPTS, *NO_VAL, *workers(0),
                     'train_cfg.max_epochs=1',
                     'model.roi_head.bbox_head.loss_bbox.loss_weight=nan'])
    assert code != 0 and 'NonFiniteLossError' in out, out[-4000:]
    assert 'non-finite loss at iteration 1 (epoch 1, batch 1): loss=nan, loss_bbox=nan;' in out
    assert 'loss_cls=nan' not in out, 'only the non-finite terms are named'
    assert 'no checkpoint was written' in out
    assert not glob.glob(osp.join(tmp_path, '*.pth'))

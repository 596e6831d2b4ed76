"""End to end on generated data: train a few iterations, evaluate, checkpoint, resume,
and a 2-process distributed run on gloo -- each through the real tools, as a user runs them."""
import glob
import json
import os.path as osp

import pytest
import torch

from tool_runner import PY, ROOT, run_tool

pytest.importorskip('mmdet')
pytest.importorskip('mmseg')

# Tiny versions of the demo configs: 8 images at 160x128, 2 iterations per epoch.
DET_OPTS = ['train_dataloader.batch_size=4', 'val_dataloader.batch_size=2',
            'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False', 'val_dataloader.persistent_workers=False',
            'default_hooks.logger.interval=1', 'default_hooks.checkpoint.interval=1',
            'train_dataloader.dataset.pipeline.2.scale=(160,128)',
            'val_dataloader.dataset.pipeline.1.scale=(160,128)']
SEG_OPTS = ['train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
            'val_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
            'val_dataloader.persistent_workers=False', 'default_hooks.logger.interval=1',
            'model.data_preprocessor.size=(128,128)',
            'train_dataloader.dataset.pipeline.2.scale=(160,128)',
            'train_dataloader.dataset.pipeline.3.crop_size=(128,128)',
            'val_dataloader.dataset.pipeline.1.scale=(160,128)']


def _checkpoints(work_dir):
    return sorted(glob.glob(osp.join(work_dir, '*.pth')))


def test_mask_rcnn_train_eval_resume(demo_coco, tmp_path):
    config = 'configs/demo/mask_rcnn_mlla_demo.py'
    work_dir = str(tmp_path / 'det')
    out = run_tool([PY, 'tools/train.py', config, '--work-dir', work_dir, '--data-root',
                    demo_coco, '--cfg-options', 'train_cfg.max_epochs=1',
                    'train_cfg.val_interval=1', *DET_OPTS])
    assert 'coco/bbox_mAP' in out and 'coco/segm_mAP' in out, out[-3000:]
    assert [osp.basename(p) for p in _checkpoints(work_dir)] == ['epoch_1.pth']
    ckpt = torch.load(osp.join(work_dir, 'epoch_1.pth'), weights_only=True)  # allow-listed
    assert ckpt['meta']['epoch'] == 1

    # resume: continues at epoch 2 from the saved optimizer/scheduler state
    out = run_tool([PY, 'tools/train.py', config, '--work-dir', work_dir, '--data-root',
                    demo_coco, '--resume', '--cfg-options', 'train_cfg.max_epochs=2',
                    'train_cfg.val_interval=2', *DET_OPTS])
    assert 'resumed epoch: 1' in out.lower() or 'resumed' in out.lower(), out[-3000:]
    assert 'Epoch(train)   [2]' in out or 'Epoch(train) [2]' in out, out[-3000:]
    assert osp.basename(_checkpoints(work_dir)[-1]) == 'epoch_2.pth'

    metrics_file = str(tmp_path / 'metrics.json')
    run_tool([PY, 'tools/test.py', config, osp.join(work_dir, 'epoch_2.pth'), '--work-dir',
              str(tmp_path / 'test'), '--data-root', demo_coco, '--metrics-out', metrics_file,
              '--cfg-options', *[o for o in DET_OPTS if o.startswith('val')]])
    with open(metrics_file) as f:
        metrics = json.load(f)
    assert {'coco/bbox_mAP', 'coco/segm_mAP'} <= set(metrics)
    assert all(-1.0 <= metrics[k] <= 1.0 for k in ('coco/bbox_mAP', 'coco/segm_mAP'))


def test_upernet_train_eval_resume(demo_ade20k, tmp_path):
    config = 'configs/demo/upernet_mlla_demo.py'
    work_dir = str(tmp_path / 'seg')
    common = ['--work-dir', work_dir, '--data-root', demo_ade20k]
    out = run_tool([PY, 'tools/train.py', config, *common, '--cfg-options',
                    'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
                    'default_hooks.checkpoint.interval=2', *SEG_OPTS])
    assert 'mIoU' in out, out[-3000:]
    assert osp.isfile(osp.join(work_dir, 'iter_2.pth'))
    out = run_tool([PY, 'tools/train.py', config, *common, '--resume', '--cfg-options',
                    'train_cfg.max_iters=3', 'train_cfg.val_interval=3',
                    'default_hooks.checkpoint.interval=3', *SEG_OPTS])
    assert 'resumed' in out.lower(), out[-3000:]
    assert osp.isfile(osp.join(work_dir, 'iter_3.pth'))
    metrics_file = str(tmp_path / 'metrics.json')
    run_tool([PY, 'tools/test.py', config, osp.join(work_dir, 'iter_3.pth'), '--work-dir',
              str(tmp_path / 'test'), '--data-root', demo_ade20k, '--metrics-out',
              metrics_file, '--cfg-options', *[o for o in SEG_OPTS if o.startswith('val')]])
    with open(metrics_file) as f:
        assert 0.0 <= json.load(f)['mIoU'] <= 100.0


def test_dist_train_two_processes_on_cpu(demo_coco, tmp_path):
    """bash tools/dist_train.sh <demo config> 2: torchrun, gloo, no CUDA needed."""
    work_dir = str(tmp_path / 'dist')
    out = run_tool(['bash', 'tools/dist_train.sh', 'configs/demo/mask_rcnn_mlla_demo.py', '2',
                    '--work-dir', work_dir, '--data-root', demo_coco, '--cfg-options',
                    'train_cfg.max_epochs=1', 'train_cfg.val_interval=1', *DET_OPTS],
                   env={'PORT': '29517', 'OMP_NUM_THREADS': '1'})
    assert 'Distributed training: True' in out, out[-3000:]
    assert 'GPU number: 2' in out, 'mmengine reports the world size as "GPU number"'
    assert "'backend': 'gloo'" in out
    assert osp.isfile(osp.join(work_dir, 'epoch_1.pth'))


def test_bad_inputs_give_clear_errors(tmp_path):
    """(A missing dataset or --data-root: tests/test_datasets/test_required_paths.py.)"""
    import subprocess
    proc = subprocess.run([PY, 'tools/train.py', 'configs/no_such_config.py'], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode != 0 and 'config file not found' in proc.stderr

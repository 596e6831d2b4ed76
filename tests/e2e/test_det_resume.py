"""Mask R-CNN (epoch-based) through tools/train.py and tools/test.py on generated data:
checkpoints, validation, exact --resume with 0 and 2 workers and after a real SIGTERM,
evaluation. One straight 2-epoch run (module fixture) is the reference of every resumed run
and the checkpoint tools/test.py evaluates."""
import glob
import os
import os.path as osp
import signal
import subprocess

import pytest
import torch

from e2e_runs import DET, DET_OPTS, assert_identical, checkpoints, evaluate, train, workers
from tool_runner import PY, ROOT, threads

pytest.importorskip('mmdet')


@pytest.fixture(scope='module')
def det_straight(demo_coco, tmp_path_factory):
    """2 epochs in one go, 2 persistent workers: the reference the resumed runs must match."""
    work_dir = tmp_path_factory.mktemp('det_straight')
    out = train(DET, work_dir, demo_coco, [*DET_OPTS, *workers(2), 'train_cfg.max_epochs=2'])
    return str(work_dir), out


@pytest.mark.parametrize('n_workers', [0, 2])
def test_det_resume_is_exact(det_straight, demo_coco, tmp_path, n_workers):
    """Issue 11's measurement: 2 epochs straight == 1 epoch + --resume, bit for bit:
    losses, every loss term, grad_norm, final weights -- with 0 and with 2 (persistent)
    workers, against one straight run with 2 workers. Each run validates at its end."""
    opts = [*DET_OPTS, *workers(n_workers)]
    out = train(DET, tmp_path, demo_coco, [*opts, 'train_cfg.max_epochs=1'])
    assert 'coco/bbox_mAP' in out and 'coco/segm_mAP' in out, out[-3000:]
    assert checkpoints(tmp_path) == ['epoch_1.pth']
    ckpt = torch.load(tmp_path / 'epoch_1.pth', weights_only=True)  # allow-listed
    assert ckpt['meta']['epoch'] == 1

    # resume: continues at epoch 2 from the saved optimizer/scheduler state
    out = train(DET, tmp_path, demo_coco, [*opts, 'train_cfg.max_epochs=2'], resume=True)
    assert 'resuming at iteration 2' in out and 'resumed epoch: 1' in out.lower(), out[-3000:]
    assert 'Epoch(train) [2]' in out, out[-3000:]
    assert checkpoints(tmp_path)[-1] == 'epoch_2.pth'
    assert_identical(det_straight[0], tmp_path, 'epoch_2.pth', first_resumed_iter=1)


def test_test_py_evaluates_a_detector(det_straight, demo_coco, tmp_path):
    work_dir, out = det_straight
    assert 'coco/bbox_mAP' in out, 'the straight run validated at its last epoch'
    metrics = evaluate(DET, osp.join(work_dir, 'epoch_2.pth'), demo_coco, tmp_path, DET_OPTS)
    assert {'coco/bbox_mAP', 'coco/segm_mAP'} <= set(metrics)
    assert all(-1.0 <= metrics[k] <= 1.0 for k in ('coco/bbox_mAP', 'coco/segm_mAP'))


def test_sigterm_checkpoints_and_resume_continues_exactly(det_straight, demo_coco, tmp_path):
    """A real SIGTERM to the training's process group (main process and 2 workers), as
    SLURM sends it: the iteration finishes, a checkpoint is written, the run exits 143;
    --resume then continues mid-epoch exactly as the uninterrupted run."""
    opts = [*DET_OPTS, *workers(2), 'train_cfg.max_epochs=2']
    cmd = [PY, 'tools/train.py', DET, '--work-dir', str(tmp_path), '--data-root', demo_coco,
           '--cfg-options', *opts]
    env = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS=str(threads()))
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env, start_new_session=True)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if 'PreemptionHook: on SIGTERM' in line:
                os.killpg(proc.pid, signal.SIGTERM)
                break
        lines += proc.stdout.readlines()
        code = proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    out = ''.join(lines)
    assert code == 128 + signal.SIGTERM, out[-4000:]
    assert 'Preempted by SIGTERM: stopped after iteration 1 (epoch 1)' in out, out[-4000:]
    ckpt = osp.join(tmp_path, 'preempted_iter_1.pth')
    with open(osp.join(tmp_path, 'last_checkpoint')) as f:
        assert f.read() == ckpt
    assert torch.load(ckpt, map_location='cpu', weights_only=True)['meta']['iter'] == 1
    assert not glob.glob(osp.join(tmp_path, '.tmp-*'))

    out = train(DET, tmp_path, demo_coco, opts, resume=True)
    assert 'resumed epoch: 0, iter: 1' in out
    assert 'Epoch(train) [1][1/1]' in out, 'the rest of epoch 1: one batch'
    assert_identical(det_straight[0], tmp_path, 'epoch_2.pth', first_resumed_iter=2)

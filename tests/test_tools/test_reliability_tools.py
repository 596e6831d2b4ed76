"""Reliability through the real tools on the demo configs and generated data:
exact --resume (epoch- and iteration-based, 0 and 2 workers), a real SIGTERM to a
training process group, tools/check_dataset.py and training on bad data."""
import glob
import importlib.util
import json
import os
import os.path as osp
import signal
import subprocess

import pytest
import torch

from bad_data import corrupt_ade20k, corrupt_coco
from tool_runner import PY, ROOT, run_tool

pytest.importorskip('mmdet')
pytest.importorskip('mmseg')

DET = 'configs/demo/mask_rcnn_mlla_demo.py'
SEG = 'configs/demo/upernet_mlla_demo.py'
# seed 0, deterministic, every iteration logged unsmoothed, no validation
COMMON = ['randomness.seed=0', 'randomness.deterministic=True', 'default_hooks.logger.interval=1',
          'log_processor.window_size=1', 'train_dataloader.persistent_workers=False',
          'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False']
# 8 images at 160x128, batch 4: 2 iterations per epoch
DET_OPTS = [*COMMON, 'train_dataloader.batch_size=4', 'train_cfg.val_begin=99',
            'default_hooks.checkpoint.interval=1',
            'train_dataloader.dataset.pipeline.2.scale=(160,128)']
# 6 images, batch 2: 3 iterations per pass of the InfiniteSampler
SEG_OPTS = [*COMMON, 'train_dataloader.batch_size=2', 'train_cfg.val_begin=99',
            'model.data_preprocessor.size=(128,128)',
            'train_dataloader.dataset.pipeline.2.scale=(160,128)',
            'train_dataloader.dataset.pipeline.3.crop_size=(128,128)',
            'default_hooks.checkpoint.interval=2']
NOT_COMPARED = ('time', 'data_time', 'eta', 'memory')


def workers(n):
    return [f'train_dataloader.num_workers={n}',
            f'train_dataloader.persistent_workers={n > 0}']


def train(config, work_dir, data_root, options, resume=False, env=None):
    return run_tool([PY, 'tools/train.py', config, '--work-dir', str(work_dir), '--data-root',
                     data_root, *(['--resume'] if resume else []), '--cfg-options', *options],
                    env=env)


def logged(work_dir):
    """{iteration: {logged scalar: value}} over every run that wrote into work_dir."""
    rows = {}
    for path in glob.glob(osp.join(str(work_dir), '*', 'vis_data', 'scalars.json')):
        with open(path) as f:
            for line in f:
                row = json.loads(line)
                if 'loss' in row:
                    rows[row['iter']] = {k: v for k, v in row.items() if k not in NOT_COMPARED}
    return rows


def weights(path):
    return torch.load(path, map_location='cpu', weights_only=True)['state_dict']


def assert_identical(straight_dir, resumed_dir, final_ckpt, first_resumed_iter):
    a, b = logged(straight_dir), logged(resumed_dir)
    assert min(b) <= first_resumed_iter and max(b) == max(a), (sorted(a), sorted(b))
    for it in range(first_resumed_iter, max(a) + 1):
        assert b[it] == a[it], f'iteration {it}: resumed {b[it]} != straight {a[it]}'
    wa, wb = weights(osp.join(straight_dir, final_ckpt)), weights(osp.join(resumed_dir, final_ckpt))
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa), 'final weights differ'


@pytest.fixture(scope='module')
def det_straight(demo_coco, tmp_path_factory):
    """2 epochs in one go, 2 persistent workers: the reference the resumed runs must match."""
    work_dir = tmp_path_factory.mktemp('det_straight')
    train(DET, work_dir, demo_coco, [*DET_OPTS, *workers(2), 'train_cfg.max_epochs=2'])
    return str(work_dir)


@pytest.mark.parametrize('n_workers', [0, 2])
def test_det_resume_is_exact(det_straight, demo_coco, tmp_path, n_workers):
    """Issue 11's measurement: 2 epochs straight == 1 epoch + --resume, bit for bit:
    losses, every loss term, grad_norm, final weights -- with 0 and with 2 (persistent)
    workers, against one straight run with 2 workers."""
    opts = [*DET_OPTS, *workers(n_workers)]
    train(DET, tmp_path, demo_coco, [*opts, 'train_cfg.max_epochs=1'])
    out = train(DET, tmp_path, demo_coco, [*opts, 'train_cfg.max_epochs=2'], resume=True)
    assert 'resuming at iteration 2' in out
    assert_identical(det_straight, tmp_path, 'epoch_2.pth', first_resumed_iter=1)


def test_seg_iteration_based_resume_mid_way(bad_ade20k, tmp_path):
    """UperNet, iteration-based, resumed at iteration 2 of 5 (mid sampler pass), on data
    where one label map holds a value beyond the classes: the sample is skipped with a
    warning naming it, and the replacement is drawn the same way in both runs."""
    root, broken = bad_ade20k
    straight = tmp_path / 'straight'
    out = train(SEG, straight, root, [*SEG_OPTS, *workers(0), 'train_cfg.max_iters=5'])
    assert f'{broken["label out of range"]}), which cannot be used' in out, out[-4000:]
    assert 'outside the 8 classes' in out
    resumed = tmp_path / 'resumed'
    train(SEG, resumed, root, [*SEG_OPTS, *workers(0), 'train_cfg.max_iters=2'])
    out = train(SEG, resumed, root, [*SEG_OPTS, *workers(0), 'train_cfg.max_iters=5'],
                resume=True)
    assert 'resumed epoch: 0, iter: 2' in out
    # iteration 3 ends the sampler's first pass, 4 and 5 start the second
    assert_identical(straight, resumed, 'iter_5.pth', first_resumed_iter=1)


def test_sigterm_checkpoints_and_resume_continues_exactly(det_straight, demo_coco, tmp_path):
    """A real SIGTERM to the training's process group (main process and 2 workers), as
    SLURM sends it: the iteration finishes, a checkpoint is written, the run exits 143;
    --resume then continues mid-epoch exactly as the uninterrupted run."""
    opts = [*DET_OPTS, *workers(2), 'train_cfg.max_epochs=2']
    cmd = [PY, 'tools/train.py', DET, '--work-dir', str(tmp_path), '--data-root', demo_coco,
           '--cfg-options', *opts]
    env = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='2')
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
    assert_identical(det_straight, tmp_path, 'epoch_2.pth', first_resumed_iter=2)


def _check_dataset(argv, capsys):
    spec = importlib.util.spec_from_file_location('check_dataset',
                                                  osp.join(ROOT, 'tools', 'check_dataset.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    code = module.main(argv)
    return code, capsys.readouterr().out


@pytest.fixture(scope='module')
def bad_coco(demo_coco, tmp_path_factory):
    root = str(tmp_path_factory.mktemp('bad') / 'coco')
    return root, corrupt_coco(demo_coco, root)


@pytest.fixture(scope='module')
def bad_ade20k(demo_ade20k, tmp_path_factory):
    root = str(tmp_path_factory.mktemp('bad') / 'ade20k')
    return root, corrupt_ade20k(demo_ade20k, root)


def test_check_dataset_names_every_problem(demo_coco, demo_ade20k, bad_coco, bad_ade20k,
                                           tmp_path, capsys):
    code, out = _check_dataset([DET, '--data-root', demo_coco, '--workers', '1'], capsys)
    assert code == 0 and '0 error(s), 0 warning(s): OK' in out, out
    code, out = _check_dataset([SEG, '--data-root', demo_ade20k, '--workers', '1'], capsys)
    assert code == 0, out

    root, broken = bad_coco
    report = str(tmp_path / 'coco.json')
    code, out = _check_dataset([DET, '--data-root', root, '--out', report], capsys)
    assert code == 1 and 'FAILED' in out
    assert '| train | error | missing file | 1 |' in out, 'the summary table counts kinds'
    with open(report) as f:
        problems = {(p['kind'], osp.basename(p['file']), p['level'])
                    for split in json.load(f) for p in split['problems']}
    expected = {('undecodable', broken['truncated JPEG'], 'error'),
                ('missing file', broken['missing file'], 'error'),
                ('grayscale image', broken['grayscale image'], 'warning'),
                ('degenerate polygon', broken['degenerate polygon'], 'error'),
                ('no annotations', broken['no annotations'], 'warning'),
                ('unknown category', broken['unknown category'], 'error')}
    assert problems == expected
    assert 'image file is truncated' in out and 'has 2 point(s)' in out

    root, broken = bad_ade20k
    code, out = _check_dataset([SEG, '--data-root', root], capsys)
    assert code == 1
    label_map = osp.join(root, 'annotations', 'training', broken['label out of range'])
    assert f'label out of range: {label_map}' in out
    assert 'raw values [200]' in out


def test_training_skips_bad_samples_naming_them(bad_coco, tmp_path):
    """(The segmentation case, a label beyond the classes: the UperNet resume test.)"""
    root, broken = bad_coco
    out = train(DET, tmp_path, root, [*DET_OPTS, *workers(0), 'train_cfg.max_epochs=1'])
    for kind in ('truncated JPEG', 'missing file'):
        assert f'{broken[kind]}), which cannot be used' in out, (kind, out[-4000:])
    assert osp.isfile(tmp_path / 'epoch_1.pth')


def test_slurm_train_asks_for_the_preemption_signal(tmp_path):
    fake_srun = tmp_path / 'srun'
    fake_srun.write_text('#!/bin/sh\necho "srun $@"\n')
    fake_srun.chmod(0o755)
    env = dict(os.environ, PATH=f'{tmp_path}:{os.environ["PATH"]}')
    cmd = ['bash', 'tools/slurm_train.sh', 'part', 'job', DET, 'work_dirs/x']
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True).stdout
    assert '--signal=USR1@180' in out and '--launcher=slurm' in out, out
    out = subprocess.run(cmd, cwd=ROOT, env=dict(env, SIGNAL='USR1@600'), capture_output=True,
                         text=True).stdout
    assert '--signal=USR1@600' in out


def test_nan_loss_stops_before_any_checkpoint(demo_coco, tmp_path):
    """A NaN injected into one loss term of the demo Mask R-CNN (its weight) through the
    command line: training stops at iteration 1, naming the term; no checkpoint."""
    cmd = [PY, 'tools/train.py', DET, '--work-dir', str(tmp_path), '--data-root', demo_coco,
           '--cfg-options', *DET_OPTS, *workers(0), 'train_cfg.max_epochs=1',
           'model.roi_head.bbox_head.loss_bbox.loss_weight=nan']
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS='2'))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and 'NonFiniteLossError' in out, out[-4000:]
    assert 'non-finite loss at iteration 1 (epoch 1, batch 1): loss=nan, loss_bbox=nan;' in out
    assert 'loss_cls=nan' not in out, 'only the non-finite terms are named'
    assert 'no checkpoint was written' in out
    assert not glob.glob(osp.join(tmp_path, '*.pth'))

"""What the training tests share: the demo configs, tiny options, running tools/train.py and
tools/test.py, and comparing a resumed run with a straight one."""
import glob
import json
import os.path as osp

import torch

from tool_runner import PY, run_tool

DET = 'configs/demo/mask_rcnn_mlla_demo.py'
SEG = 'configs/demo/upernet_mlla_demo.py'
# seed 0, deterministic, every iteration logged unsmoothed
COMMON = ['randomness.seed=0', 'randomness.deterministic=True', 'default_hooks.logger.interval=1',
          'log_processor.window_size=1', 'train_dataloader.persistent_workers=False',
          'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False']
# 8 images at 160x128, batch 4: 2 iterations per epoch; validation (4 images) at the last epoch
DET_OPTS = [*COMMON, 'train_dataloader.batch_size=4', 'val_dataloader.batch_size=2',
            'default_hooks.checkpoint.interval=1',
            'train_dataloader.dataset.pipeline.2.scale=(160,128)',
            'val_dataloader.dataset.pipeline.1.scale=(160,128)']
NO_VAL = ['train_cfg.val_begin=99']
# 6 images, batch 2: 3 iterations per pass of the InfiniteSampler; validation (3 images) at the
# last iteration; checkpoints every 2 iterations and at the end
SEG_OPTS = [*COMMON, 'train_dataloader.batch_size=2', 'train_cfg.val_interval=5',
            'model.data_preprocessor.size=(128,128)',
            'train_dataloader.dataset.pipeline.2.scale=(160,128)',
            'train_dataloader.dataset.pipeline.3.crop_size=(128,128)',
            'val_dataloader.dataset.pipeline.1.scale=(160,128)',
            'default_hooks.checkpoint.interval=2']
NOT_COMPARED = ('time', 'data_time', 'eta', 'memory')


def workers(n):
    return [f'train_dataloader.num_workers={n}',
            f'train_dataloader.persistent_workers={n > 0}']


def train(config, work_dir, data_root, options, resume=False, env=None):
    return run_tool([PY, 'tools/train.py', config, '--work-dir', str(work_dir), '--data-root',
                     data_root, *(['--resume'] if resume else []), '--cfg-options', *options],
                    env=env)


def checkpoints(work_dir):
    return sorted(osp.basename(p) for p in glob.glob(osp.join(str(work_dir), '*.pth')))


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


def evaluate(config, checkpoint, data_root, tmp_path, options):
    metrics_file = str(tmp_path / 'metrics.json')
    run_tool([PY, 'tools/test.py', config, checkpoint, '--work-dir', str(tmp_path / 'test'),
              '--data-root', data_root, '--metrics-out', metrics_file, '--cfg-options',
              *[o for o in options if o.startswith('val')]])
    with open(metrics_file) as f:
        return json.load(f)

"""Does ``--resume`` continue a run exactly? Train N epochs straight and 1 + ``--resume``.

    python tools/analysis/resume_exactness.py [--config configs/demo/mask_rcnn_mlla_demo.py]
        [--images 16] [--epochs 2] [--workers 1] [--work-dir work_dirs/resume_exactness]
        [--repo .] [--json OUT]

Generates ``--images`` training images (the demo generator, seed 0), trains the config
``--epochs`` epochs in one go, then 1 epoch and ``--resume`` to ``--epochs`` (seed 0,
deterministic mode, every iteration logged unsmoothed), and prints per iteration of the
resumed part the loss and grad_norm of both runs, plus whether the final weights are
bit-identical. ``--repo`` runs another checkout's ``tools/train.py`` (e.g. an older
commit, for a before/after comparison); the data and this script stay the same.
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
sys.path.insert(0, ROOT)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--config', default='configs/demo/mask_rcnn_mlla_demo.py')
    p.add_argument('--images', type=int, default=16)
    p.add_argument('--epochs', type=int, default=2)
    p.add_argument('--workers', type=int, default=1,
                   help='train dataloader workers (persistent when > 0, as in the demo)')
    p.add_argument('--work-dir', default='work_dirs/resume_exactness')
    p.add_argument('--repo', default=ROOT, help='checkout whose tools/train.py runs')
    p.add_argument('--json', help='write the comparison here')
    return p.parse_args(argv)


def scalars(work_dir):
    """Per-iteration training scalars, from every run that wrote into ``work_dir``."""
    rows = {}
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for line in f:
                row = json.loads(line)
                if 'loss' in row:
                    rows[row['iter']] = row
    return rows


def train(repo, config, work_dir, data_root, workers, epochs, resume=False):
    options = ['randomness.seed=0', 'randomness.deterministic=True',
               f'train_cfg.max_epochs={epochs}', f'train_cfg.val_begin={epochs + 1}',
               'default_hooks.logger.interval=1', 'log_processor.window_size=1',
               f'train_dataloader.num_workers={workers}',
               f'train_dataloader.persistent_workers={workers > 0}']
    cmd = [sys.executable, osp.join(repo, 'tools', 'train.py'), osp.join(repo, config),
           '--work-dir', work_dir, '--data-root', data_root,
           *(['--resume'] if resume else []), '--cfg-options', *options]
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f'{" ".join(cmd)} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}')


def same_weights(a, b):
    import torch
    wa = torch.load(a, map_location='cpu', weights_only=False)['state_dict']
    wb = torch.load(b, map_location='cpu', weights_only=False)['state_dict']
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def main(argv=None):
    args = parse_args(argv)
    from mlla_mm.datasets import generate_coco_instance
    data_root = osp.abspath(osp.join(args.work_dir, 'data'))
    generate_coco_instance(data_root, num_train=args.images, num_val=4, seed=0)
    straight = osp.abspath(osp.join(args.work_dir, 'straight'))
    resumed = osp.abspath(osp.join(args.work_dir, 'resumed'))
    train(args.repo, args.config, straight, data_root, args.workers, args.epochs)
    train(args.repo, args.config, resumed, data_root, args.workers, 1)
    train(args.repo, args.config, resumed, data_root, args.workers, args.epochs, resume=True)

    a, b = scalars(straight), scalars(resumed)
    print('| iter | epoch | loss straight | loss resumed | grad_norm straight | '
          'grad_norm resumed |\n|---:|---:|---:|---:|---:|---:|')
    rows = []
    for it in sorted(a):
        ra, rb = a[it], b.get(it, {})
        rows.append(dict(iter=it, epoch=ra.get('epoch'), loss=[ra['loss'], rb.get('loss')],
                         grad_norm=[ra.get('grad_norm'), rb.get('grad_norm')]))
        print(f'| {it} | {ra.get("epoch")} | {ra["loss"]:.6f} | {rb.get("loss", float("nan")):.6f}'
              f' | {ra.get("grad_norm", float("nan")):.4f} | '
              f'{rb.get("grad_norm", float("nan")):.4f} |')
    last = f'epoch_{args.epochs}.pth'
    identical_weights = same_weights(osp.join(straight, last), osp.join(resumed, last))
    identical_logs = all(r['loss'][0] == r['loss'][1] and r['grad_norm'][0] == r['grad_norm'][1]
                         for r in rows)
    print(f'\nlosses and grad norms identical: {identical_logs}; final weights identical: '
          f'{identical_weights}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(rows=rows, identical_logs=identical_logs,
                           identical_weights=identical_weights, repo=args.repo,
                           workers=args.workers, images=args.images), f, indent=1)
    return 0 if identical_logs and identical_weights else 1


if __name__ == '__main__':
    sys.exit(main())

"""CPU mini-ablation of the Demystify designs: every row, the same short budget, one table.

TOY-SCALE HARNESS CHECK, NOT A SCIENTIFIC RESULT. Each row of the paper's ablation
(``DESIGN_PRESETS``: the linear-attention baseline, the six single-design changes, the
positional-encoding substitutes, 'mamba' and 'mlla') trains the demo Mask R-CNN
(configs/demystify/demo/mask_rcnn_demystify_demo.py: a 32-wide DemystifyNet, 64-channel FPN)
from scratch on the generated COCO-format shapes data for the same number of iterations, then
is evaluated with the real CocoMetric on the generated validation split. It shows that every
design trains end to end through mmdet on our kernels and what each costs in time and memory
on this machine; a few dozen iterations on synthetic shapes say nothing about ImageNet, COCO
or the paper's conclusions.

    python tools/analysis/demystify_ablation.py                     # every row, defaults
    python tools/analysis/demystify_ablation.py --rows linear_attention forget_gate mamba \
        --iters 40 --work-dir work_dirs/demystify_ablation

Each row runs ``tools/train.py`` in its own process (so its peak memory is its own) on a config
written to ``<work-dir>/<row>/config.py``. Writes ``<work-dir>/ablation.{md,json}``.
"""
import argparse
import json
import os
import os.path as osp
import platform
import statistics
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

CONFIG = 'configs/demystify/demo/mask_rcnn_demystify_demo.py'
METRICS = ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP', 'coco/segm_mAP_50')
BANNER = ('Toy-scale harness check, not a scientific result: {iters} iterations (batch {batch}) '
          'from scratch on the generated shapes data, evaluated on its {val} validation images.')


def parse_args(argv=None):
    from mlla_mm.models.layers import DESIGN_PRESETS
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--rows', nargs='+', default=list(DESIGN_PRESETS),
                        help=f'designs to run (default: all of {", ".join(DESIGN_PRESETS)})')
    parser.add_argument('--iters', type=int, default=40, help='training iterations per row')
    parser.add_argument('--batch', type=int, default=4, help='images per iteration')
    parser.add_argument('--lr', type=float, default=1e-3, help='AdamW learning rate')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch threads per run (1: on a shared 2-core machine two OpenMP '
                        'threads ran the demo ~10x slower than one)')
    parser.add_argument('--data-root', default='data/demo_coco',
                        help='COCO-format data with the demo classes (the generated demo data is '
                        'made there if it has no annotations)')
    parser.add_argument('--kernel-backend', default='auto', help='scan backend of the rows')
    parser.add_argument('--work-dir', default='work_dirs/demystify_ablation')
    parser.add_argument('--seed', type=int, default=0,
                        help='training seed (the data is always the demo data, seed 0)')
    args = parser.parse_args(argv)
    unknown = [r for r in args.rows if r not in DESIGN_PRESETS]
    if unknown:
        parser.error(f'unknown rows {unknown}; choose from {list(DESIGN_PRESETS)}')
    if args.iters < 1 or args.batch < 1 or args.threads < 1:
        parser.error('--iters, --batch and --threads must be positive')
    return args


def row_config(args, row: str, data_root: str):
    """The demo config for one row, on a fixed iteration budget, validated once at the end."""
    from mlla_mm.utils import launch
    cfg = launch.load_config(osp.join(ROOT, CONFIG), {'data_root': data_root})
    cfg.model.backbone.design = row
    cfg.model.backbone.kernel_backend = args.kernel_backend
    cfg.train_dataloader.batch_size = args.batch
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=args.iters, val_interval=args.iters)
    warmup = max(1, min(30, args.iters // 4))
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
                                end=warmup)]
    cfg.optim_wrapper.optimizer.lr = args.lr
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False,
                                        interval=args.iters, max_keep_ckpts=1)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=min(10, args.iters),
                                    log_metric_by_epoch=False)
    cfg.log_processor = dict(by_epoch=False, window_size=min(10, args.iters))
    cfg.randomness = dict(seed=args.seed)
    return cfg


def read_scalars(work_dir: str):
    """(train iteration times, last validation metrics) from mmengine's scalars.json."""
    runs = sorted(d for d in os.listdir(work_dir) if osp.isdir(osp.join(work_dir, d, 'vis_data')))
    if not runs:
        raise RuntimeError(f'{work_dir}: no mmengine log (vis_data/scalars.json) was written')
    times, metrics = [], {}
    with open(osp.join(work_dir, runs[-1], 'vis_data', 'scalars.json')) as f:
        for line in f:
            entry = json.loads(line)
            if 'loss' in entry and 'time' in entry:
                times.append(entry['time'])
            if any(k in entry for k in METRICS):
                metrics = {k: entry.get(k) for k in METRICS}
    return times, metrics


def run_row(args, row: str, data_root: str) -> dict:
    work_dir = osp.join(args.work_dir, row)
    os.makedirs(work_dir, exist_ok=True)
    config_path = osp.join(work_dir, 'config.py')
    row_config(args, row, data_root).dump(config_path)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    cmd = [sys.executable, 'tools/train.py', config_path, '--work-dir', work_dir]
    print(f'\n[ablation] {row}: $ {" ".join(cmd)}', flush=True)
    start = time.perf_counter()
    with open(osp.join(work_dir, 'train_stdout.log'), 'w') as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        # wait4 gives this child's own resource usage (ru_maxrss in KiB on Linux).
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        return dict(row=row, status=f'failed (exit {proc.returncode}, see '
                    f'{osp.join(work_dir, "train_stdout.log")})')
    times, metrics = read_scalars(work_dir)
    # the first logged window includes start-up (dataloader, first-call overheads)
    steady = times[1:] if len(times) > 1 else times
    return dict(row=row, status='ok', wall_s=round(wall, 1),
                s_per_iter=round(statistics.median(steady), 3) if steady else None,
                peak_rss_mb=round(usage.ru_maxrss / 1024, 1),
                **{k.split('/', 1)[1]: v for k, v in metrics.items()})


def markdown(results, args, num_val) -> str:
    from mlla_mm.models.layers import PAPER_ROWS
    lines = ['**' + BANNER.format(iters=args.iters, batch=args.batch, val=num_val) + '**', '',
             f'Machine: {platform.machine()}, {os.cpu_count()} CPU cores, '
             f'{args.threads} torch thread(s); scan backend {args.kernel_backend!r}.', '',
             '| row | paper IN-1k top-1 | bbox mAP | bbox mAP@50 | segm mAP | segm mAP@50 '
             '| s/iter | wall (s) | peak RSS (MB) |',
             '|---|---:|---:|---:|---:|---:|---:|---:|---:|']

    def fmt(value, digits=3):
        return '–' if value is None else f'{value:.{digits}f}'

    for r in results:
        top1 = PAPER_ROWS[r['row']].top1
        if r['status'] != 'ok':
            lines.append(f"| `{r['row']}` | {fmt(top1, 1)} | {r['status']} |||||||")
            continue
        lines.append(f"| `{r['row']}` | {fmt(top1, 1)} | {fmt(r.get('bbox_mAP'))} | "
                     f"{fmt(r.get('bbox_mAP_50'))} | {fmt(r.get('segm_mAP'))} | "
                     f"{fmt(r.get('segm_mAP_50'))} | {fmt(r['s_per_iter'], 2)} | "
                     f"{fmt(r['wall_s'], 0)} | {fmt(r['peak_rss_mb'], 0)} |")
    return '\n'.join(lines) + '\n'


def main(argv=None):
    args = parse_args(argv)
    data_root = osp.join(ROOT, args.data_root) if not osp.isabs(args.data_root) else args.data_root
    val_ann = osp.join(data_root, 'annotations', 'instances_val2017.json')
    if not osp.isfile(val_ann):
        from mlla_mm.datasets import demo_data
        demo_data.generate_coco_instance(data_root)
    with open(val_ann) as f:
        num_val = len(json.load(f)['images'])
    print(f'[ablation] data at {data_root} ({num_val} validation images)', flush=True)
    os.makedirs(args.work_dir, exist_ok=True)
    results = []
    for row in args.rows:
        results.append(run_row(args, row, data_root))
        print(f'[ablation] {results[-1]}', flush=True)
    table = markdown(results, args, num_val)
    with open(osp.join(args.work_dir, 'ablation.md'), 'w') as f:
        f.write(table)
    with open(osp.join(args.work_dir, 'ablation.json'), 'w') as f:
        json.dump(dict(args=vars(args), results=results), f, indent=2)
    print('\n' + table)
    print(f'[ablation] written to {osp.join(args.work_dir, "ablation.md")} (and .json)')
    return results


if __name__ == '__main__':
    main()

"""The embedded demo: generate data, evaluate the untrained model, train, evaluate again.

    python tools/demo.py                 # Mask R-CNN + MLLA on the generated COCO-format data
    python tools/demo.py --task seg      # UperNet + MLLA on the generated ADE20K-layout data
    python tools/demo.py --task all

Prints the metrics before and after training and writes them to
``<work-dir>/demo_results.json``. Everything runs on the CPU; see README for timings.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

TASKS = {
    'det': dict(config='configs/demo/mask_rcnn_mlla_demo.py', kind='coco',
                data_root='data/demo_coco',
                keys=('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP', 'coco/segm_mAP_50')),
    'seg': dict(config='configs/demo/upernet_mlla_demo.py', kind='ade20k',
                data_root='data/demo_ade20k', keys=('mIoU', 'aAcc', 'mAcc')),
}


def run(cmd, log):
    print(f'\n$ {" ".join(cmd)}', flush=True)
    start = time.time()
    subprocess.run(cmd, cwd=ROOT, check=True)
    elapsed = time.time() - start
    log.append(dict(cmd=' '.join(cmd), seconds=round(elapsed, 1)))
    return elapsed


def latest_checkpoint(work_dir):
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(path):
        raise FileNotFoundError(f'training wrote no checkpoint under {work_dir}')
    with open(path) as f:
        return f.read().strip()


def run_task(name, args):
    task = TASKS[name]
    config = args.config if args.config and args.task != 'all' else task['config']
    work_dir = osp.join(args.work_dir, name)
    py = sys.executable
    log = []
    from mlla_mm.datasets import demo_data
    t0 = time.time()
    if task['kind'] == 'coco':
        summary = demo_data.generate_coco_instance(osp.join(ROOT, task['data_root']),
                                                   seed=args.seed)
    else:
        summary = demo_data.generate_ade20k_semantic(osp.join(ROOT, task['data_root']),
                                                     seed=args.seed)
    print(f'[demo] data at {task["data_root"]} ({time.time() - t0:.1f} s): {summary}', flush=True)

    before = osp.join(work_dir, 'metrics_untrained.json')
    after = osp.join(work_dir, 'metrics_trained.json')
    run([py, 'tools/test.py', config, 'none', '--work-dir', osp.join(work_dir, 'untrained'),
         '--metrics-out', before], log)
    train_cmd = [py, 'tools/train.py', config, '--work-dir', work_dir]
    if args.cfg_options:
        train_cmd += ['--cfg-options'] + args.cfg_options
    train_seconds = run(train_cmd, log)
    run([py, 'tools/test.py', config, latest_checkpoint(work_dir), '--work-dir', work_dir,
         '--metrics-out', after], log)
    with open(before) as f:
        m_before = json.load(f)
    with open(after) as f:
        m_after = json.load(f)
    rows = [(k, m_before.get(k), m_after.get(k)) for k in task['keys']]
    print(f'\n[demo] {name}: {config}, trained in {train_seconds / 60:.1f} min on '
          f'{os.cpu_count()} CPU cores')
    print('| metric | untrained | trained |\n|---|---|---|')
    for k, b, a in rows:
        print(f'| {k} | {b} | {a} |')
    return dict(config=config, train_minutes=round(train_seconds / 60, 2),
                untrained=m_before, trained=m_after, steps=log)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--task', choices=['det', 'seg', 'all'], default='det')
    parser.add_argument('--config', help='demo config to use instead of the default')
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--seed', type=int, default=0, help='seed of the generated data')
    parser.add_argument('--cfg-options', nargs='+', help='passed to tools/train.py')
    args = parser.parse_args(argv)
    names = ['det', 'seg'] if args.task == 'all' else [args.task]
    results = {name: run_task(name, args) for name in names}
    os.makedirs(args.work_dir, exist_ok=True)
    out = osp.join(args.work_dir, 'demo_results.json')
    with open(out, 'w') as f:
        json.dump(results, f, indent=2)
    print(f'\n[demo] results written to {out}')


if __name__ == '__main__':
    main()

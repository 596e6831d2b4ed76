"""The embedded demo: generate data, evaluate the untrained model, train, evaluate again.

    python tools/demo.py                 # Mask R-CNN + MLLA on the generated COCO-format data
    python tools/demo.py --task seg      # UperNet + MLLA on the generated ADE20K-layout data
    python tools/demo.py --task medseg   # VM-UNet + MHS on the generated ISIC-layout lesions
    python tools/demo.py --task pose     # top-down HRVMamba on the generated COCO keypoints
    python tools/demo.py --task all

Prints the metrics before and after training and writes them to
``<work-dir>/demo_results.json``; then draws the trained model's predictions beside the
ground truth on a few validation images (``<work-dir>/<task>/pictures/val_*.png``, two
of them stacked in ``predictions.jpg``) and plots the training curves
(``training_curves.png``), printing their paths. Everything runs on the CPU; see README
for timings. ``--data-root DIR`` runs on existing data instead of generating it.
"""
import argparse
import gc
import importlib.util
import json
import os
import os.path as osp
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

TASKS = {
    # evaluate during training too, for the metric curve (the configs evaluate at the end)
    'det': dict(config='configs/demo/mask_rcnn_mlla_demo.py', kind='coco',
                data_root='data/demo_coco', curve_options=['train_cfg.val_interval=1'],
                keys=('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP', 'coco/segm_mAP_50')),
    'seg': dict(config='configs/demo/upernet_mlla_demo.py', kind='ade20k',
                data_root='data/demo_ade20k', curve_options=['train_cfg.val_interval=200'],
                keys=('mIoU', 'aAcc', 'mAcc')),
    'medseg': dict(config='configs/demo/vmunet_mhs_demo.py', kind='isic',
                   data_root='data/demo_isic', curve_options=['train_cfg.val_interval=100'],
                   keys=('IoU', 'Dice', 'Accuracy', 'Sensitivity', 'Specificity')),
    'pose': dict(config='configs/demo/td-hm_hrvmamba_demo.py', kind='coco_pose',
                 data_root='data/demo_coco_pose', curve_options=['train_cfg.val_interval=1'],
                 keys=('coco/AP', 'coco/AP .5', 'coco/AP .75', 'coco/AR')),
}


def _generator(kind):
    from mlla_mm.datasets import demo_data, demo_medseg, demo_pose
    return {'coco': demo_data.generate_coco_instance,
            'ade20k': demo_data.generate_ade20k_semantic,
            'isic': demo_medseg.generate_isic_lesions,
            'coco_pose': demo_pose.generate_coco_pose}[kind]


def _tool(script):
    """``tools/<name>.py`` loaded as a module (for its ``main(argv)``), once per process."""
    name = 'mlla_mm_demo_' + osp.splitext(osp.basename(script))[0]
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, osp.join(ROOT, script))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def run(script, args, log):
    """``python <script> <args>`` (printed, so it can be rerun by hand), run in this process:
    the stack (torch, mmengine, the codebase, the kernels) is imported once for all steps
    instead of once per step (~5 s each on 2 cores)."""
    cmd = ['python', script, *args]
    print(f'\n$ {" ".join(cmd)}', flush=True)
    start = time.time()
    _tool(script).main(list(args))
    gc.collect()   # the runner and its dataloader workers
    elapsed = time.time() - start
    log.append(dict(cmd=' '.join(cmd), seconds=round(elapsed, 1)))
    return elapsed


def latest_checkpoint(work_dir):
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(path):
        raise FileNotFoundError(f'training wrote no checkpoint under {work_dir}')
    with open(path) as f:
        return f.read().strip()


def write_pictures(config, checkpoint, work_dir, data_root, metric_keys, before_training,
                   num_images=4, binary=False):
    """Predictions beside the ground truth on ``num_images`` validation images (``binary``:
    image | ground-truth mask | predicted mask), and the training curves; returns the paths
    written."""
    import torch
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DATASETS

    from mlla_mm.utils import inference, visualize
    out_dir = osp.join(work_dir, 'pictures')
    model = inference.init_model(config, checkpoint, cfg_options=dict(data_root=data_root))
    dataset = DATASETS.build(model.cfg.val_dataloader.dataset)
    visualizer = visualize.make_visualizer(model, name='mlla_mm_demo')
    written, drawn = [], []
    for indices in _pictured_images(model, dataset, num_images):
        with torch.no_grad():
            samples = model.test_step(pseudo_collate([dataset[i] for i in indices]))
        sample = visualize.merge_pose_samples(samples) if len(indices) > 1 else samples[0]
        image = inference.read_image(sample.img_path)
        picture = (visualize.draw_binary_masks(image, sample) if binary else
                   visualize.draw_sample(visualizer, image, sample, with_gt=True))
        stem = osp.splitext(osp.basename(sample.img_path))[0]
        written.append(visualize.save_rgb(picture, osp.join(out_dir, f'val_{stem}.png')))
        drawn.append(picture)
    # two of them, one above the other: a small overview (the README's picture)
    written.append(visualize.save_rgb(visualize.stack(drawn[:2], max_width=720),
                                      osp.join(out_dir, 'predictions.jpg')))
    written.append(visualize.plot_training_curves(
        visualize.find_scalars(work_dir), osp.join(out_dir, 'training_curves.png'),
        metric_keys=metric_keys, before_training=before_training,
        title=f'{osp.basename(config)} on {osp.basename(data_root.rstrip("/"))}'))
    return written


def _pictured_images(model, dataset, num_images):
    """Dataset indices of ``num_images`` validation images, one list per image: a
    top-down pose dataset holds one item per person, and a picture shows them all."""
    from mlla_mm.utils.visualize import pick_evenly
    if model.codebase != 'mmpose':
        return [[i] for i in pick_evenly(len(dataset), num_images)]
    by_image = {}
    for i in range(len(dataset)):
        by_image.setdefault(dataset.get_data_info(i)['img_id'], []).append(i)
    images = sorted(by_image)
    return [by_image[images[k]] for k in pick_evenly(len(images), num_images)]


def _metric(value):
    """A metric for the table: mmseg reports float32 percentages (66.2699966...) -> 66.27."""
    return round(value, 4) if isinstance(value, float) else value


def run_task(name, args):
    task = TASKS[name]
    config = args.config if args.config and args.task != 'all' else task['config']
    work_dir = osp.join(args.work_dir, name)
    log = []
    if args.data_root:
        data_root = osp.abspath(args.data_root)
        print(f'[demo] using the data at {data_root}', flush=True)
    else:
        data_root = osp.join(ROOT, task['data_root'])
        t0 = time.time()
        summary = _generator(task['kind'])(data_root, seed=args.seed)
        print(f'[demo] data at {task["data_root"]} ({time.time() - t0:.1f} s): {summary}',
              flush=True)
    data_args = ['--data-root', data_root] if args.data_root else []
    options = ['--cfg-options'] + args.cfg_options if args.cfg_options else []

    before = osp.join(work_dir, 'metrics_untrained.json')
    after = osp.join(work_dir, 'metrics_trained.json')
    run('tools/test.py', [config, 'none', '--work-dir', osp.join(work_dir, 'untrained'),
                          '--metrics-out', before, *data_args, *options], log)
    train_options = ['--cfg-options'] + task['curve_options'] + (args.cfg_options or [])
    train_seconds = run('tools/train.py', [config, '--work-dir', work_dir, *data_args,
                                           *train_options], log)
    checkpoint = latest_checkpoint(work_dir)
    run('tools/test.py', [config, checkpoint, '--work-dir', work_dir, '--metrics-out', after,
                          *data_args, *options], log)
    with open(before) as f:
        m_before = json.load(f)
    with open(after) as f:
        m_after = json.load(f)
    rows = [(k, m_before.get(k), m_after.get(k)) for k in task['keys']]
    print(f'\n[demo] {name}: {config}, trained in {train_seconds / 60:.1f} min on '
          f'{os.cpu_count()} CPU cores')
    print('| metric | untrained | trained |\n|---|---|---|')
    for k, b, a in rows:
        print(f'| {k} | {_metric(b)} | {_metric(a)} |')

    start = time.time()
    pictures = write_pictures(config, checkpoint, work_dir, data_root, task['keys'], m_before,
                              num_images=args.num_pictures, binary=task['kind'] == 'isic')
    log.append(dict(cmd='pictures', seconds=round(time.time() - start, 1)))
    layout = ('image | ground truth | prediction' if task['kind'] == 'isic'
              else 'left = ground truth, right = prediction')
    print(f'\n[demo] {name}: pictures ({time.time() - start:.0f} s; {layout}):')
    for path in pictures:
        print(f'  {path}')
    return dict(config=config, train_minutes=round(train_seconds / 60, 2),
                untrained=m_before, trained=m_after, pictures=pictures, steps=log)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--task', choices=[*TASKS, 'all'], default='det')
    parser.add_argument('--config', help='demo config to use instead of the default')
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--seed', type=int, default=0, help='seed of the generated data')
    parser.add_argument('--data-root', help='run on the data in DIR (COCO layout for det, '
                        'ADE20K layout for seg, ISIC layout for medseg, COCO person keypoints '
                        'for pose) instead of '
                        'generating it')
    parser.add_argument('--num-pictures', type=int, default=4,
                        help='validation images drawn with their predictions (default 4)')
    parser.add_argument('--cfg-options', nargs='+',
                        help='passed to tools/train.py and tools/test.py')
    args = parser.parse_args(argv)
    names = list(TASKS) if args.task == 'all' else [args.task]
    if args.data_root and len(names) > 1:
        parser.error(f'--data-root runs one task: pass --task with one of {list(TASKS)}')
    # paths as the caller meant them, then the steps run from the repo root (config paths)
    args.work_dir = osp.abspath(args.work_dir)
    if args.data_root:
        args.data_root = osp.abspath(args.data_root)
    if args.config and osp.isfile(args.config) and osp.abspath(os.getcwd()) != ROOT:
        args.config = osp.abspath(args.config)
    os.chdir(ROOT)
    results = {name: run_task(name, args) for name in names}
    os.makedirs(args.work_dir, exist_ok=True)
    out = osp.join(args.work_dir, 'demo_results.json')
    with open(out, 'w') as f:
        json.dump(results, f, indent=2)
    print(f'\n[demo] results written to {out}')


if __name__ == '__main__':
    main()

"""Run a trained detector or segmentor on images: pictures and machine-readable results.

    python tools/infer.py CONFIG CHECKPOINT INPUT... [--out-dir DIR] [--score-thr 0.3]
        [--device cpu] [--cfg-options k=v ...]

INPUT: image files, folders (searched recursively) or glob patterns (quote them:
'data/*.jpg'). The codebase comes from the config's default_scope. Writes, per image:

* ``DIR/vis/NAME.png``: the prediction drawn on the image (masks, boxes, class names
  for detection; a colour overlay with class names for segmentation);
* detection: ``DIR/preds/NAME.json`` with ``boxes`` (x1, y1, x2, y2 in input pixels),
  ``scores``, ``labels``, ``label_names`` and ``masks`` (COCO RLE, decode with
  ``pycocotools.mask.decode``), detections below ``--score-thr`` left out;
* segmentation: ``DIR/preds/NAME.png``, the label map (pixel = class index);

and ``DIR/results.json`` (classes, per-image outputs, errors). An unreadable image is
reported by name and skipped; the exit status is then 1. CHECKPOINT may be ``none``
(the model as initialised).
"""
import argparse
import glob
import json
import os
import os.path as osp
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
import mlla_mm  # noqa: E402,F401

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file (or mlla_mm::NAME.py)')
    parser.add_argument('checkpoint', help="trained checkpoint, or 'none'")
    parser.add_argument('inputs', nargs='+', help='image files, folders or glob patterns')
    parser.add_argument('--out-dir', default='outputs', help='where to write (default outputs/)')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='detection: drop detections below this score (default 0.3)')
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda:0'")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    return parser.parse_args(argv)


def collect_inputs(inputs):
    """``[(path, output stem)]``; a folder's images keep their relative paths as stems."""
    found = []
    for item in inputs:
        if osp.isdir(item):
            for folder, _, files in sorted(os.walk(item)):
                for name in sorted(files):
                    if name.lower().endswith(IMAGE_EXTENSIONS):
                        path = osp.join(folder, name)
                        found.append((path, osp.splitext(osp.relpath(path, item))[0]))
        elif any(ch in item for ch in '*?['):
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                raise FileNotFoundError(f'{item!r} matches no file')
            found += [(p, osp.splitext(osp.basename(p))[0]) for p in matches if osp.isfile(p)]
        else:
            found.append((item, osp.splitext(osp.basename(item))[0]))   # checked when read
    stems, unique = {}, []
    for path, stem in found:
        n = stems.get(stem, 0)
        stems[stem] = n + 1
        unique.append((path, stem if n == 0 else f'{stem}_{n}'))
    return unique


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmengine.utils import ProgressBar

    from mlla_mm.utils import inference, visualize
    images = collect_inputs(args.inputs)
    if not images:
        raise FileNotFoundError(f'no images found in {args.inputs} '
                                f'(extensions: {", ".join(IMAGE_EXTENSIONS)})')
    model = inference.init_model(args.config, args.checkpoint, device=args.device,
                                 cfg_options=args.cfg_options)
    classes = list(model.dataset_meta.get('classes', ()))
    visualizer = visualize.make_visualizer(model, name='mlla_mm_infer')
    vis_dir, pred_dir = osp.join(args.out_dir, 'vis'), osp.join(args.out_dir, 'preds')
    summary = dict(config=args.config, checkpoint=args.checkpoint, task=model.codebase,
                   classes=classes, score_thr=args.score_thr, images=[], errors=[])

    progress = ProgressBar(len(images), file=sys.stderr) if len(images) > 1 else None
    for path, stem in images:
        try:
            image = inference.read_image(path)
        except inference.UnreadableImage as err:
            print(f'\nERROR {err}; skipped', file=sys.stderr, flush=True)
            summary['errors'].append(dict(input=path, error=str(err)))
            if progress:
                progress.update()
            continue
        sample = inference.predict(model, image)
        record = dict(input=path, vis=osp.join(vis_dir, stem + '.png'))
        if model.codebase == 'mmdet':
            result = inference.detections_to_dict(sample, classes, args.score_thr)
            record['pred'] = osp.join(pred_dir, stem + '.json')
            record['num_detections'] = len(result['scores'])
            os.makedirs(osp.dirname(record['pred']), exist_ok=True)
            with open(record['pred'], 'w') as f:
                json.dump(dict(input=path, **result), f)
        else:
            record['pred'] = osp.join(pred_dir, stem + '.png')
            inference.save_label_map(sample, record['pred'])
        drawn = visualize.draw_sample(visualizer, image, sample, with_gt=False,
                                      score_thr=args.score_thr)
        visualize.save_rgb(drawn, record['vis'])
        summary['images'].append(record)
        if progress:
            progress.update()

    os.makedirs(args.out_dir, exist_ok=True)
    with open(osp.join(args.out_dir, 'results.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    done, failed = len(summary['images']), len(summary['errors'])
    print(f'\n{done} images -> {vis_dir}/ (pictures), {pred_dir}/ (results); '
          f'summary {osp.join(args.out_dir, "results.json")}')
    if failed:
        print(f'{failed} of {len(images)} inputs could not be read: '
              f'{[e["input"] for e in summary["errors"]]}', file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())

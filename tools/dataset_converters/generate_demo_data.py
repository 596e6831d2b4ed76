"""Generate the demo datasets the project trains on without downloads.

Writes, under ``--out`` (default ``data``, relative to the current directory):

* ``<out>/demo_coco``: instance segmentation in the COCO layout
  (``annotations/instances_{train,val}2017.json``, ``train2017/``,
  ``val2017/``), shape classes ``circle, square, triangle, star``;
* ``<out>/demo_ade20k``: semantic segmentation in the ADE20K layout
  (``images/{training,validation}/*.jpg``,
  ``annotations/{training,validation}/*.png``), eight classes named after
  ADE20K classes (see :mod:`mlla_mm.datasets.demo_data`);
* ``<out>/demo_isic`` (``--kind isic``): binary lesion segmentation in the
  ISIC 2017/2018 layout (``{train,val}/images/*.jpg``,
  ``{train,val}/masks/*_segmentation.png``; see
  :mod:`mlla_mm.datasets.demo_medseg`), written only when asked for;
* ``<out>/demo_coco_pose`` (``--kind pose``): human pose in the COCO
  person-keypoints layout (``annotations/person_keypoints_{train,val}2017.json``,
  ``train2017/``, ``val2017/``, ``person_detection_results/``): posed figures
  whose joints are the 17 COCO keypoints (see :mod:`mlla_mm.datasets.demo_pose`),
  written only when asked for.

Generation is deterministic for a given ``--seed`` and is skipped when the
output already exists with the same arguments (``--overwrite`` forces it).

Examples::

    python tools/dataset_converters/generate_demo_data.py
    python tools/dataset_converters/generate_demo_data.py --kind coco \\
        --num-train 400 --num-val 100 --image-size 384 320 --seed 1
    python tools/dataset_converters/generate_demo_data.py --kind isic
    python tools/dataset_converters/generate_demo_data.py --kind pose \\
        --persons-per-image 2 6 --person-height 60 200
"""
import argparse
import json
import os.path as osp
import sys

try:
    from mlla_mm.datasets.demo_data import (generate_ade20k_semantic,
                                            generate_coco_instance)
    from mlla_mm.datasets.demo_medseg import generate_isic_lesions
    from mlla_mm.datasets.demo_pose import generate_coco_pose
except ImportError:  # run from a source checkout without `pip install -e .`
    sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))
    from mlla_mm.datasets.demo_data import (generate_ade20k_semantic,
                                            generate_coco_instance)
    from mlla_mm.datasets.demo_medseg import generate_isic_lesions
    from mlla_mm.datasets.demo_pose import generate_coco_pose


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Generate the demo datasets: COCO-format instances, ADE20K-layout '
        'semantic segmentation, ISIC-layout lesions, COCO person keypoints.')
    parser.add_argument('--out', default='data',
                        help='parent directory; the datasets go to '
                        '<out>/demo_coco, <out>/demo_ade20k, <out>/demo_isic and '
                        '<out>/demo_coco_pose (default: data)')
    parser.add_argument('--kind', choices=('coco', 'ade20k', 'isic', 'pose', 'all'),
                        default='all', help='which dataset(s) to write; all = coco '
                        'and ade20k (isic: the binary lesion set; pose: COCO keypoints)')
    parser.add_argument('--num-train', type=int, default=200,
                        help='training images per dataset (default: 200)')
    parser.add_argument('--num-val', type=int, default=50,
                        help='validation images per dataset (default: 50)')
    parser.add_argument('--image-size', type=int, nargs=2, default=None,
                        metavar=('WIDTH', 'HEIGHT'),
                        help='image size (default: 320 256; isic: 192 144)')
    parser.add_argument('--objects-per-image', type=int, nargs=2,
                        default=(1, 5), metavar=('MIN', 'MAX'),
                        help='shapes per image, inclusive (default: 1 5)')
    parser.add_argument('--object-size', type=int, nargs=2, default=(32, 120),
                        metavar=('MIN', 'MAX'),
                        help='shape diameter range in pixels (default: 32 120)')
    parser.add_argument('--persons-per-image', type=int, nargs=2,
                        default=(1, 4), metavar=('MIN', 'MAX'),
                        help='pose: figures per image, inclusive (default: 1 4)')
    parser.add_argument('--person-height', type=int, nargs=2,
                        default=(80, 220), metavar=('MIN', 'MAX'),
                        help='pose: standing height of the figures in pixels '
                        '(default: 80 220)')
    parser.add_argument('--random-colors', action='store_true',
                        help='any hue for any shape class (by default each '
                        'class has its own hue band, an easy cue)')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    parser.add_argument('--overwrite', action='store_true',
                        help='regenerate even if the output exists')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    common = dict(num_train=args.num_train, num_val=args.num_val,
                  image_size=tuple(args.image_size or (320, 256)), seed=args.seed,
                  objects_per_image=tuple(args.objects_per_image),
                  object_size=tuple(args.object_size),
                  color_by_class=not args.random_colors,
                  overwrite=args.overwrite)
    jobs = []
    if args.kind in ('coco', 'all'):
        jobs.append((generate_coco_instance, osp.join(args.out, 'demo_coco')))
    if args.kind in ('ade20k', 'all'):
        jobs.append((generate_ade20k_semantic,
                     osp.join(args.out, 'demo_ade20k')))
    if args.kind == 'isic':
        jobs.append((generate_isic_lesions, osp.join(args.out, 'demo_isic')))
    if args.kind == 'pose':
        jobs.append((generate_coco_pose, osp.join(args.out, 'demo_coco_pose')))
    for generate, root in jobs:
        kwargs = common
        if generate is generate_isic_lesions:   # no shapes, its own default size
            kwargs = dict(num_train=args.num_train, num_val=args.num_val, seed=args.seed,
                          overwrite=args.overwrite,
                          image_size=tuple(args.image_size or (192, 144)))
        elif generate is generate_coco_pose:    # figures instead of shapes
            kwargs = dict(num_train=args.num_train, num_val=args.num_val, seed=args.seed,
                          overwrite=args.overwrite,
                          image_size=tuple(args.image_size or (320, 256)),
                          persons_per_image=tuple(args.persons_per_image),
                          person_height=tuple(args.person_height))
        try:
            summary = generate(root, **kwargs)
        except (ValueError, FileExistsError) as e:
            sys.exit(f'error: {e}')
        state = ('generated' if summary['generated'] else
                 'already up to date (use --overwrite to regenerate)')
        print(f'{summary["kind"]}: {osp.abspath(root)} {state} '
              f'in {summary["seconds"]:.1f} s')
        print(json.dumps(summary['splits'], indent=2))


if __name__ == '__main__':
    main()

"""Check the training and validation data a config points at, before training on it.

    python tools/check_dataset.py CONFIG [--data-root DIR] [--cfg-options k=v ...]
        [--splits train val] [--workers N] [--out report.json] [--strict] [--max-list N]

Every image must exist and decode completely (a truncated JPEG is an error: OpenCV would
train on its grey remainder); channels and sizes are reported; COCO annotations are
checked box by box and polygon by polygon, with category ids against the file and the
config's classes; semantic label maps must be single-channel, the image's size, and hold
only the config's classes or the ignore index. Prints a summary table (Markdown) and
every problem naming its file; exits 1 if there is any error (with --strict also on
warnings), else 0. See mlla_mm/datasets/checks.py and README "Reliability".
"""
import argparse
import json
import os
import os.path as osp
import sys
from collections import defaultdict

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..'))
import mlla_mm  # noqa: E402,F401  (registers our modules; applies the shims)
from mlla_mm.datasets import checks  # noqa: E402
from mlla_mm.datasets.required_paths import dataset_leaves  # noqa: E402
from mlla_mm.utils import launch  # noqa: E402

SPLITS = ('train', 'val', 'test')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Check the datasets of a config')
    parser.add_argument('config', help='config file')
    parser.add_argument('--splits', nargs='+', choices=SPLITS, default=['train', 'val'],
                        help='which dataloaders to check (default: train val)')
    parser.add_argument('--workers', type=int, default=min(8, os.cpu_count() or 1),
                        help='processes decoding images (default: min(8, CPUs))')
    parser.add_argument('--out', help='also write the report as JSON here')
    parser.add_argument('--strict', action='store_true', help='exit 1 on warnings too')
    parser.add_argument('--max-list', type=int, default=20,
                        help='list at most this many problems of each kind (default 20)')
    parser.add_argument('--data-root', help='check the dataset under this root instead')
    from mmengine.config import DictAction
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value (mmengine syntax)')
    return parser.parse_args(argv)


def _join(root, path):
    return path if not root or osp.isabs(path) else osp.join(root, path)


def _dataset_class(type_name):
    from mmengine.registry import DATASETS
    return DATASETS.get(type_name) if isinstance(type_name, str) else type_name


def check_leaf(split, ds_cfg, workers):
    root = ds_cfg.get('data_root', '') or ''
    prefix = ds_cfg.get('data_prefix', {}) or {}
    ann_file = ds_cfg.get('ann_file', '') or ''
    cls = _dataset_class(ds_cfg.get('type'))
    metainfo = ds_cfg.get('metainfo') or {}
    if ann_file.endswith('.json') and 'seg_map_path' not in prefix:
        classes = metainfo.get('classes') or getattr(cls, 'METAINFO', {}).get('classes')
        filter_cfg = ds_cfg.get('filter_cfg') or {}
        return checks.check_coco(
            _join(root, ann_file), _join(root, prefix.get('img', prefix.get('img_path', ''))),
            classes=classes, split=split, workers=workers,
            filter_empty_gt=bool(filter_cfg.get('filter_empty_gt')) and
            not ds_cfg.get('test_mode', False))

    # other datasets (mmseg's): let the dataset class list its files
    from mmengine.registry import DATASETS
    cfg = dict(ds_cfg, pipeline=[], lazy_init=False)
    name = f'{ds_cfg.get("type")} {_join(root, prefix.get("img_path", ""))}'
    try:
        dataset = DATASETS.build(cfg)
    except Exception as error:  # missing folder, unreadable annotation file ...
        report = checks.SplitReport(split, name)
        report.problems.append(checks.Problem(checks.ERROR, 'dataset does not build',
                                              _join(root, ann_file or prefix.get('img_path', '')),
                                              f'{type(error).__name__}: {error}'))
        return report
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    if all(info.get('seg_map_path') for info in infos) and infos:
        return checks.check_segmentation_pairs(
            [(info['img_path'], info['seg_map_path']) for info in infos],
            num_classes=len(dataset.metainfo['classes']),
            reduce_zero_label=bool(getattr(dataset, 'reduce_zero_label', False)),
            ignore_index=int(getattr(dataset, 'ignore_index', 255)),
            label_map=getattr(dataset, 'label_map', None),
            split=split, dataset=name, workers=workers)
    report = checks.SplitReport(split, name, images=len(infos))
    report.problems += checks.inspect_images(
        [(info['img_path'], None) for info in infos if info.get('img_path')], workers)
    return report


def main(argv=None) -> int:
    args = parse_args(argv)
    options = dict(args.cfg_options or {})
    if args.data_root:
        options['data_root'] = args.data_root
    try:
        cfg = launch.load_config(args.config, options)
    except launch.DataNotFound as err:   # --data-root is not a folder
        sys.exit(f'error: {err}')
    from mmengine.registry import init_default_scope
    init_default_scope(launch.codebase_of(cfg))

    reports, seen = [], []
    for split in args.splits:
        loader = cfg.get(f'{split}_dataloader')
        if not loader:
            continue
        for leaf in dataset_leaves(loader['dataset']):
            if leaf in seen:  # test_dataloader = val_dataloader
                continue
            seen.append(leaf)
            reports.append(check_leaf(split, leaf, args.workers))

    print(checks.summary_table(reports))
    by_kind = defaultdict(list)
    for report in reports:
        for problem in report.problems:
            by_kind[(report.split, problem.level, problem.kind)].append(problem)
    for (split, level, kind), problems in sorted(by_kind.items()):
        print(f'\n{split}: {len(problems)} x {level} "{kind}"')
        for problem in problems[:args.max_list]:
            print(f'  {problem}')
        if len(problems) > args.max_list:
            print(f'  ... and {len(problems) - args.max_list} more (--max-list)')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump([r.to_dict() for r in reports], f, indent=1)
    errors = sum(r.errors for r in reports)
    warnings = sum(r.warnings for r in reports)
    failed = errors > 0 or (args.strict and warnings > 0)
    print(f'\n{errors} error(s), {warnings} warning(s): '
          + ('FAILED' if failed else 'OK') + (' (--strict)' if args.strict else ''))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())

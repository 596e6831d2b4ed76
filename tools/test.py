"""Evaluate a trained detector (mmdet) or segmentor (mmseg).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl]
        [--show-dir DIR] [--tta] [--metrics-out m.json] [--cfg-options k=v ...] [--data-root DIR] [--launcher pytorch]

CHECKPOINT may be ``none`` to evaluate the model as initialized (e.g. the
untrained baseline of the demo).
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
import mlla_mm  # noqa: E402,F401
from mlla_mm.utils import launch  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help="checkpoint file, or 'none' for the initial weights")
    parser.add_argument('--work-dir', help='the dir to save logs and metrics')
    parser.add_argument('--out', help='dump predictions to a pickle file (.pkl)')
    parser.add_argument('--show-dir', help='save visualized predictions under work_dir/DIR')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation')
    parser.add_argument('--metrics-out', help='also write the metrics to this JSON file')
    launch.add_common_args(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:   # a missing dataset is named before anything is built
        cfg = launch.config_from_args(args, loaders=('test', ))
    except launch.DataNotFound as err:
        sys.exit(f'error: {err}')
    scope = launch.codebase_of(cfg)

    if args.checkpoint.lower() == 'none':
        cfg.load_from = None
    else:
        if '://' not in args.checkpoint and not osp.isfile(args.checkpoint):
            raise FileNotFoundError(f'checkpoint {args.checkpoint!r} not found '
                                    "(pass 'none' to evaluate the initial weights)")
        cfg.load_from = args.checkpoint
    # evaluating a trained model: the ImageNet init would be overwritten anyway
    if cfg.load_from and isinstance(cfg.model.get('backbone'), dict):
        cfg.model.backbone.pop('init_cfg', None)

    if args.show_dir:
        vis = cfg.default_hooks.get('visualization')
        if vis is not None:
            vis.draw = True
            vis.test_out_dir = args.show_dir
    if args.tta:
        if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
            raise ValueError('--tta needs tta_model and tta_pipeline in the config '
                             '(the ADE20K configs have them)')
        from mmengine.config import ConfigDict
        cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline

    runner = launch.build_runner(cfg)
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out must be a .pkl file, got {args.out!r}')
        if scope == 'mmdet':
            from mmdet.evaluation import DumpDetResults
            runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))
        else:
            from mmengine.evaluator import DumpResults
            runner.test_evaluator.metrics.append(DumpResults(out_file_path=args.out))
    metrics = runner.test()
    launch.stop_dataloader_workers(runner)
    from mmengine.dist import is_main_process
    write_metrics = args.metrics_out and is_main_process()   # every process holds the metrics
    launch.close_distributed()
    if write_metrics:
        import json
        os.makedirs(osp.dirname(osp.abspath(args.metrics_out)), exist_ok=True)
        def as_json(value):
            try:
                return float(value)   # python and numpy scalars
            except (TypeError, ValueError):
                return str(value)

        with open(args.metrics_out, 'w') as f:
            json.dump({k: as_json(v) for k, v in metrics.items()}, f, indent=2)
    return metrics


if __name__ == '__main__':
    main()

"""Train a detector (mmdet) or segmentor (mmseg) from any config of this repo.

    python tools/train.py configs/mask_rcnn_mlla_t.py [--work-dir DIR] [--resume [CKPT]]
        [--amp] [--cfg-options k=v ...] [--data-root DIR] [--launcher pytorch]

The codebase is chosen from the config's default_scope. Without CUDA, distributed
runs use gloo and SyncBN falls back to BN (see mlla_mm/compat.py).
"""
import argparse
import os
import sys

from mmengine.config import DictAction

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
import mlla_mm  # noqa: E402,F401  (shims + registration before anything is built)
from mlla_mm.utils import launch  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a detector or segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by the actual total batch size')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CKPT, or (no value) from the latest checkpoint '
                        'in the work dir')
    parser.add_argument('--data-root',
                        help='point every dataloader/evaluator at this dataset root '
                        '(same as --cfg-options data_root=DIR)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value (mmengine syntax)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main(argv=None):
    args = parse_args(argv)
    options = dict(args.cfg_options or {})
    if args.data_root:
        options['data_root'] = args.data_root
    cfg = launch.load_config(args.config, options)
    launch.codebase_of(cfg)
    cfg.launcher = args.launcher
    launch.set_work_dir(cfg, args.config, args.work_dir)
    launch.adapt_to_machine(cfg)
    if args.amp:
        launch.enable_amp(cfg)
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise RuntimeError('--auto-scale-lr needs auto_scale_lr.base_batch_size in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if not os.path.isfile(args.resume):
            raise FileNotFoundError(f'--resume {args.resume!r}: no such checkpoint file '
                                    '(pass --resume alone to resume from the work dir)')
        cfg.resume = True
        cfg.load_from = args.resume

    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    runner.train()
    return runner


if __name__ == '__main__':
    main()

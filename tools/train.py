"""Train a detector (mmdet) or segmentor (mmseg) from any config of this repo.

    python tools/train.py configs/mask_rcnn_mlla_t.py [--work-dir DIR] [--resume [CKPT]]
        [--amp [--amp-dtype bfloat16]] [--compile [--compile-backend B]]
        [--cfg-options k=v ...] [--data-root DIR] [--launcher pytorch]

The codebase is chosen from the config's default_scope. Without CUDA, distributed
runs use gloo and SyncBN falls back to BN (see mlla_mm/compat.py).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
import mlla_mm  # noqa: E402,F401  (shims + registration before anything is built)
from mlla_mm.utils import launch  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a detector or segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision: float16 + loss scaling on a GPU, '
                        'bfloat16 autocast on a CPU')
    parser.add_argument('--amp-dtype', choices=launch.AMP_DTYPES,
                        help='with --amp: the autocast dtype (GPU default float16; the CPU '
                        'takes only bfloat16)')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the backbone as one graph (fullgraph=True)')
    parser.add_argument('--compile-backend',
                        help="with --compile: torch.compile's backend (default inductor; "
                        "'aot_eager' compiles in seconds but runs at eager speed)")
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by the actual total batch size')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CKPT, or (no value) from the latest checkpoint '
                        'in the work dir')
    launch.add_common_args(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:   # a missing dataset is named before anything is built
        cfg = launch.config_from_args(args, loaders=('train', 'val'))
    except launch.DataNotFound as err:
        sys.exit(f'error: {err}')
    if args.amp_dtype and not args.amp:
        raise ValueError('--amp-dtype needs --amp')
    if args.amp:
        launch.enable_amp(cfg, args.amp_dtype)
    if args.compile_backend and not args.compile:
        raise ValueError('--compile-backend needs --compile')
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

    runner = launch.build_runner(cfg)
    if args.compile:
        launch.compile_backbone(runner.model, args.compile_backend)
    runner.train()
    launch.stop_dataloader_workers(runner)
    launch.close_distributed()
    return runner


if __name__ == '__main__':
    main()

"""Resolution-scaling benchmark: time, memory and images/s of backbones against pixels.

Examples::

    # the default sweep (ours + Swin-T + ViT-Ti at 224..2048), on the GPU if there is one
    python tools/analysis/benchmark_backbones.py --out-dir work_dirs/scaling
    # CPU, forward, batch 1, three sizes
    python tools/analysis/benchmark_backbones.py --device cpu --sizes 224 512 1024 --repeat 3
    # Vim vs DeiT at 1248 (the Vim paper's comparison), forward+backward
    python tools/analysis/benchmark_backbones.py --backbones Vim-Ti ViT-Ti --sizes 1248 --train
    # HRVMamba and its peers (HRNet-W32, HRFormer-S) at the pose and segmentation sizes
    python tools/analysis/benchmark_backbones.py --device cpu --threads 1 --sizes 256x192 512 \
        --backbones HRVMamba-T HRVMamba-S HRNet-W32 HRFormer-S --rounds 2 --repeat 3
    # a custom arch (JSON model config, mmengine registry)
    python tools/analysis/benchmark_backbones.py --backbones \
        'mini={"type": "MLLA", "arch": {"embed_dims": 32, "depths": [1,1,1,1],
               "num_heads": [1,1,1,1]}}'

Writes <out-dir>/<stem>.{md,json,png} (stem: backbone_scaling); the method (isolation, timing,
memory) is described in mlla_mm/utils/benchmark.py.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..')))

from mlla_mm.utils.benchmark import (DEFAULT_BACKBONES, DEFAULT_SIZES, PRESETS,  # noqa: E402
                                     machine_info, markdown_table, merge_results, parse_size,
                                     run_benchmark, summarize, write_outputs)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--backbones', nargs='+', default=list(DEFAULT_BACKBONES),
                        help=f'preset names ({", ".join(PRESETS)}) or NAME=JSON model configs')
    parser.add_argument('--sizes', nargs='+', type=parse_size, default=list(DEFAULT_SIZES),
                        help='input sizes: pixels per side (square) or HxW, e.g. 256x192')
    parser.add_argument('--batch', nargs='+', type=int, default=[1], help='batch sizes')
    parser.add_argument('--train', action='store_true', help='time forward + backward')
    parser.add_argument('--warmup', type=int, default=2, help='untimed passes per case')
    parser.add_argument('--repeat', type=int, default=10, help='timed passes per case')
    parser.add_argument('--rounds', type=int, default=1,
                        help='sweeps over all cases (interleaved; times pooled)')
    parser.add_argument('--out-dir', default='work_dirs/backbone_scaling')
    parser.add_argument('--stem', default='backbone_scaling',
                        help='file name (without extension) of the .md/.json/.png outputs')
    parser.add_argument('--device', default=None, help="'cpu' or 'cuda[:N]' (default: cuda if "
                        'available, else cpu)')
    parser.add_argument('--timeout-per-case', type=float, default=600,
                        help='seconds before a case is abandoned (and larger sizes skipped)')
    parser.add_argument('--no-isolate', action='store_true',
                        help='run cases in this process (faster start, less exact memory)')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--merge', nargs='+', default=None, metavar='JSON',
                        help='measure nothing: merge earlier JSON outputs (e.g. one run per '
                        'size) into one table, JSON and plot')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.merge:
        results, info, train = merge_results(args.merge)
        info = dict(info, merged_from=args.merge)
        summary = summarize(results)
        paths = write_outputs(results, summary, info, args.out_dir, train, args.stem)
        print(markdown_table(results, summary, info['label'], train))
        print('written: ' + ', '.join(paths.values()))
        return
    import torch
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    if device.startswith('cuda') and not torch.cuda.is_available():
        raise SystemExit(f'--device {device}: CUDA is not available here; use --device cpu.')
    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine_info(device)

    def save_partial(results):  # a killed sweep still leaves what it measured
        write_outputs(results, summarize(results), info, args.out_dir, args.train, args.stem,
                      with_plot=False)

    results = run_benchmark(args.backbones, args.sizes, args.batch, args.train, args.warmup,
                            args.repeat, args.rounds, device, args.timeout_per_case,
                            isolate=not args.no_isolate, threads=args.threads,
                            on_case=save_partial)
    summary = summarize(results)
    paths = write_outputs(results, summary, info, args.out_dir, args.train, args.stem)
    print(markdown_table(results, summary, info['label'], args.train))
    print('written: ' + ', '.join(paths.values()))


if __name__ == '__main__':
    main()

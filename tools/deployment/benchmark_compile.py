"""Eager vs ``torch.compile`` training step of a backbone, side by side in one process.

    python tools/deployment/benchmark_compile.py [--backbone MambaOut] [--arch '{...}']
        [--size 256 256] [--batch 2] [--backend inductor] [--steps 5]

One step = forward, a scalar loss over every output map, backward (no optimizer). The
compiled model is ``torch.compile(fullgraph=True)`` of a copy of the eager one; the first
compiled call (compile time) is reported apart; then eager and compiled steps alternate and
the medians are compared. Prints a table and the CPU model.
"""
import argparse
import copy
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
import torch  # noqa: E402

import mlla_mm  # noqa: E402,F401  (registers the backbones)
from mlla_kernels.benchmark import cpu_name  # noqa: E402


def step(model, images):
    outs = model(images)
    loss = sum((o * o).mean() for o in outs)
    loss.backward()
    model.zero_grad(set_to_none=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--backbone', default='MambaOut')
    parser.add_argument('--arch', default='{"dims": [32, 64, 128, 256], "depths": [1, 1, 2, 1]}',
                        help='the arch argument as JSON (a preset name in quotes also works)')
    parser.add_argument('--size', type=int, nargs=2, default=(256, 256), metavar=('H', 'W'))
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--backend', default='inductor')
    parser.add_argument('--steps', type=int, default=5)
    args = parser.parse_args(argv)

    from mmengine.registry import MODELS
    torch.manual_seed(0)
    eager = MODELS.build(dict(type=args.backbone, arch=json.loads(args.arch),
                              drop_path_rate=0.0)).train()
    compiled = torch.compile(copy.deepcopy(eager), fullgraph=True, backend=args.backend)
    images = torch.randn(args.batch, 3, *args.size)
    step(eager, images)                          # warm-up (numba kernels, allocator)
    start = time.perf_counter()
    step(compiled, images)
    compile_s = time.perf_counter() - start
    times = {'eager': [], 'compiled': []}
    for _ in range(args.steps):
        for name, model in (('eager', eager), ('compiled', compiled)):
            start = time.perf_counter()
            step(model, images)
            times[name].append(time.perf_counter() - start)
    eager_ms = statistics.median(times['eager']) * 1e3
    compiled_ms = statistics.median(times['compiled']) * 1e3
    print(f'CPU: {cpu_name()} ({torch.get_num_threads()} threads), torch {torch.__version__}')
    print(f'{args.backbone} {args.arch}, batch {args.batch}, {args.size[0]}x{args.size[1]}, '
          f'forward+backward, median of {args.steps} interleaved steps')
    print('| mode | step ms | compile s |')
    print('|---|---|---|')
    print(f'| eager | {eager_ms:.0f} | - |')
    print(f'| torch.compile ({args.backend}) | {compiled_ms:.0f} | {compile_s:.0f} |')
    print(f'compiled / eager step time: {compiled_ms / eager_ms:.2f}')


if __name__ == '__main__':
    main()

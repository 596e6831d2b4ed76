"""Forward time of the backbones' tiny presets on the deployment paths, side by side.

    python tools/deployment/benchmark_deploy.py [--backbones MLLA VMamba ...] [--sizes 512 1024]
        [--paths eager compile onnxruntime openvino] [--repeats 3] [--json FILE]

Per backbone (its default ``arch``, the tiny preset) and size (batch 1, H = W = size):
PyTorch eager, ``torch.compile`` (inductor, fullgraph), onnxruntime (CPU) and OpenVINO (CPU)
on the ONNX file of ``mlla_mm.deploy.onnx``: the forward time (best of ``--repeats`` after a
warm-up, all paths at the same thread count) and the one-off cost of each path (compile or
export + session/compile time). A path that fails gets its error in the table instead of a
time. Prints a Markdown table and the CPU; ``--json`` writes the rows too. Slow: ONNX export
traces the model three times, and Inductor takes minutes on a small CPU.
"""
import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
import torch  # noqa: E402

import mlla_mm  # noqa: E402,F401  (registers the backbones)
from mlla_kernels.benchmark import cpu_name  # noqa: E402
from mlla_mm.deploy.onnx import best_ms  # noqa: E402  (imports no ONNX package)

BACKBONES = ('MLLA', 'VMamba', 'Vim', 'MambaOut', 'DemystifyNet', 'MHSVMamba')
PATHS = ('eager', 'compile', 'onnxruntime', 'openvino')


def timed(setup):
    start = time.perf_counter()
    out = setup()
    return out, time.perf_counter() - start


def bench(model, images, path, workdir, repeats):
    """(forward ms, one-off s) of ``path``."""
    if path == 'eager':
        with torch.no_grad():
            return best_ms(lambda: model(images), repeats), 0.0
    if path == 'compile':
        compiled = torch.compile(model, fullgraph=True)
        with torch.no_grad():
            _, setup_s = timed(lambda: compiled(images))
            return best_ms(lambda: compiled(images), repeats), setup_s
    from mlla_mm.deploy import onnx as deploy
    onnx_path = os.path.join(workdir, f'{type(model).__name__}_{images.shape[-1]}.onnx')
    if not os.path.exists(onnx_path):
        bench.export_s = deploy.export_onnx(model, images, onnx_path)
    feed = images.numpy()
    if path == 'onnxruntime':
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session, setup_s = timed(lambda: ort.InferenceSession(
            onnx_path, options, providers=['CPUExecutionProvider']))
        name = session.get_inputs()[0].name
        return best_ms(lambda: session.run(None, {name: feed}), repeats), bench.export_s + setup_s
    import openvino as ov
    core = ov.Core()
    core.set_property('CPU', {'INFERENCE_NUM_THREADS': torch.get_num_threads()})
    compiled, setup_s = timed(lambda: core.compile_model(onnx_path, 'CPU'))
    return best_ms(lambda: compiled(feed), repeats), bench.export_s + setup_s


bench.export_s = 0.0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--backbones', nargs='+', default=list(BACKBONES))
    parser.add_argument('--sizes', nargs='+', type=int, default=[512, 1024])
    parser.add_argument('--paths', nargs='+', default=list(PATHS), choices=PATHS)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--json', default=None)
    args = parser.parse_args(argv)

    from mmengine.registry import MODELS
    rows = []
    print(f'CPU: {cpu_name()}, {torch.get_num_threads()} threads, batch 1, tiny presets; '
          'forward ms (one-off s: compile, or export + session)')
    print('| backbone | size | ' + ' | '.join(args.paths) + ' |')
    print('|---|---|' + '---|' * len(args.paths))
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.backbones:
            torch.manual_seed(0)
            model = MODELS.build(dict(type=name, drop_path_rate=0.0)).eval()
            for size in args.sizes:
                images = torch.randn(1, 3, size, size)
                bench.export_s = 0.0
                row, cells = dict(backbone=name, size=size), []
                for path in args.paths:
                    try:
                        ms, setup_s = bench(model, images, path, workdir, args.repeats)
                        row[path] = dict(forward_ms=ms, setup_s=setup_s)
                        cells.append(f'{ms:.0f} ({setup_s:.0f} s)' if setup_s else f'{ms:.0f}')
                    except Exception as error:   # a path that fails is a result too
                        row[path] = dict(error=f'{type(error).__name__}: {error}'[:300])
                        cells.append(f'fails: {type(error).__name__}')
                rows.append(row)
                print(f'| {name} | {size} | ' + ' | '.join(cells) + ' |', flush=True)
                if args.json:   # after every row: a run killed later (out of memory) keeps it
                    with open(args.json, 'w') as f:
                        json.dump(dict(cpu=cpu_name(), threads=torch.get_num_threads(),
                                       rows=rows), f, indent=1)


if __name__ == '__main__':
    main()

"""Resolution-scaling benchmark of backbones: time and memory against pixels.

The papers' headline claims are about cost at high resolution (all three are
"linear in pixels"; Vim: 2.8× faster than DeiT with 86.8% less GPU memory at
1248×1248). This module measures them on the user's machine, for our
backbones and for attention baselines from the installed OpenMMLab stack, in
one run so that the ratios are fair.

Method (one *case* = backbone × size × batch; a size is square, ``512``, or ``HxW``,
``256x192``):

* Each case runs in a **fresh subprocess** (``isolate=True``, the default): the
  memory figure is then that case's alone, an out-of-memory kill or a hang
  (``timeout``) costs only that case, and after a failure the larger sizes of
  the same backbone are skipped.
* Cases run size-major with the backbones alternating (``for size: for
  backbone``), and ``rounds > 1`` repeats the whole sweep, so slow drifts of a
  shared machine hit every backbone alike; the reported time is the median of
  all timed iterations of all rounds.
* Inside a case: build, ``warmup`` untimed passes (Triton compilation, caches,
  allocator), then ``repeat`` timed passes. On CUDA an extra untimed pass after
  the warm-up measures memory; on CPU the first warm-up pass does (see below).
* Time: ``time.perf_counter`` around each pass; on CUDA, CUDA events recorded
  around the pass and ``torch.cuda.synchronize()`` before reading them.
* Memory, CUDA: ``torch.cuda.max_memory_allocated`` after
  ``reset_peak_memory_stats`` (weights and input included), i.e. the peak of
  tensors torch allocated, not the caching allocator's reserve.
* Memory, CPU: peak-RSS delta of the first full-size forward of the fresh process
  (the model and input already built, and one pass at 64×64 (or the case's size if smaller) run before it so that one-time
  costs -- JIT kernels loaded from their cache, library set-up -- are not counted).
  Before it, the kernel's peak-RSS mark is
  reset (``echo 5 > /proc/self/clear_refs``, Linux ≥ 4.0) and the current RSS
  read (``VmRSS``); after it, ``VmHWM - VmRSS_before`` is the extra resident
  memory the pass needed (activations, workspaces). The first pass is used
  because later passes reuse pages the allocator kept, and would read lower.
  Where the reset is not possible, ``ru_maxrss`` is used instead of ``VmHWM``.
* Forward runs under ``torch.no_grad()`` in eval mode; ``train=True`` times
  forward + backward of the mean of all outputs in train mode.

The scaling exponent is the least-squares slope of log(time) (or log(memory))
against log(pixels) over the sizes measured; ``tail`` is the slope between the
two largest sizes, closer to the asymptotic behaviour that fixed per-call
overheads hide at small sizes.
"""
import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

from .backbone_cases import (DEFAULT_BACKBONES, DEFAULT_SIZES, PRESETS, Size,  # noqa: F401
                             _loss, _proc_status_kb, _reset_peak_rss, build_backbone,
                             machine_info, parse_size, resolve_spec, size_hw)

RESULT_MARKER = '@@BENCHMARK_RESULT@@'


# --------------------------------------------------------------------------------------
# one case
# --------------------------------------------------------------------------------------
def measure_case(spec: Dict[str, Any], size: Size, batch: int = 1, train: bool = False,
                 warmup: int = 1, repeat: int = 3, device: str = 'cpu',
                 threads: Optional[int] = None) -> Dict[str, Any]:
    """Measure one backbone at one size (see :func:`size_hw`), in this process.

    Returns:
        dict: ``status`` ('ok' | 'oom' | 'error'), ``times_ms`` (each timed
        pass), ``mem_mb``, ``mem_method``, ``params``, ``error`` on failure.
    """
    import torch
    if threads:
        torch.set_num_threads(threads)
    height, width = size_hw(size)
    result = dict(name=spec['name'], size=parse_size(size), batch=batch, pixels=height * width,
                  train=train, device=device, status='ok', times_ms=[], mem_mb=None)
    try:
        model = build_backbone(spec).to(device)
        result['params'] = sum(p.numel() for p in model.parameters())
        model.train(train)
        x = torch.randn(batch, 3, height, width, device=device)
        cuda = device.startswith('cuda')

        def one_pass():
            if train:
                _loss(model(x)).backward()
                for p in model.parameters():
                    p.grad = None
            else:
                with torch.no_grad():
                    model(x)

        if cuda:
            for _ in range(warmup):
                one_pass()
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            one_pass()
            torch.cuda.synchronize(device)
            result['mem_mb'] = torch.cuda.max_memory_allocated(device) / 2**20
            result['mem_method'] = 'cuda max_memory_allocated (total)'
        else:
            # One-time costs (JIT-compiled kernels loaded from their cache, library
            # initialisation) are paid by a small pass first, so they are not counted.
            # Then the first full-size pass touches every page it needs: its peak-RSS
            # delta is the pass's memory (it doubles as the first warm-up).
            x_full, x = x, torch.randn(batch, 3, min(height, 64), min(width, 64), device=device)
            one_pass()
            x = x_full
            before = _proc_status_kb('VmRSS')
            if _reset_peak_rss():
                one_pass()
                peak = _proc_status_kb('VmHWM')
                result['mem_method'] = 'peak RSS delta of the first pass (clear_refs + VmHWM)'
            else:
                one_pass()
                peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                result['mem_method'] = 'peak RSS delta of the first pass (ru_maxrss)'
            result['mem_mb'] = max(peak - before, 0) / 1024 if before and peak else None
            for _ in range(warmup - 1):
                one_pass()
        # timed passes
        for _ in range(repeat):
            if cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(
                    enable_timing=True)
                start.record()
                one_pass()
                end.record()
                torch.cuda.synchronize(device)
                result['times_ms'].append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                one_pass()
                result['times_ms'].append((time.perf_counter() - t0) * 1e3)
    except Exception as err:  # noqa: BLE001  (a failed case must not stop the sweep)
        oom = isinstance(err, MemoryError) or 'out of memory' in str(err).lower() or \
            type(err).__name__ == 'OutOfMemoryError'
        result['status'] = 'oom' if oom else 'error'
        result['error'] = f'{type(err).__name__}: {str(err)[:300]}'
    return result


def _run_isolated(case: Dict[str, Any], timeout: Optional[float]) -> Dict[str, Any]:
    """:func:`measure_case` in a fresh interpreter; OOM kills and timeouts become statuses."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(p for p in sys.path if p)
    cmd = [sys.executable, '-m', __spec__.name, '--worker', json.dumps(case)]
    height, width = size_hw(case['size'])
    base = dict(name=case['spec']['name'], size=case['size'], batch=case['batch'],
                pixels=height * width, train=case['train'], device=case['device'],
                times_ms=[], mem_mb=None)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return dict(base, status='timeout', error=f'no result within {timeout:.0f} s')
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER):])
    if proc.returncode in (-9, 137):
        return dict(base, status='oom', error='killed (SIGKILL: out of memory?)')
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return dict(base, status='error', error=f'exit {proc.returncode}: ' + ' | '.join(tail))


# --------------------------------------------------------------------------------------
# the sweep
# --------------------------------------------------------------------------------------
def run_benchmark(backbones: Sequence[Any], sizes: Sequence[Size] = DEFAULT_SIZES,
                  batches: Sequence[int] = (1, ), train: bool = False, warmup: int = 1,
                  repeat: int = 3, rounds: int = 1, device: str = 'cpu',
                  timeout_per_case: Optional[float] = None, isolate: bool = True,
                  threads: Optional[int] = None,
                  log: Callable[[str], None] = print,
                  on_case: Optional[Callable[[List[Dict[str, Any]]], None]] = None
                  ) -> List[Dict[str, Any]]:
    """Measure every backbone at every size and batch; one merged result per case.

    Args:
        backbones (sequence): Preset names, ``NAME=JSON`` strings or spec dicts
            (see :func:`resolve_spec`).
        sizes (sequence): Input sizes: pixels per side (square) or ``'HxW'``.
        batches (sequence of int): Batch sizes.
        train (bool): Time forward + backward instead of forward.
        warmup (int): Untimed passes per case and round.
        repeat (int): Timed passes per case and round.
        rounds (int): Sweeps over all cases; times are pooled over rounds.
        device (str): 'cpu', 'cuda' or 'cuda:N'.
        timeout_per_case (float, optional): Seconds before a case is abandoned
            (only with ``isolate``).
        isolate (bool): One subprocess per case (see the module doc).
        threads (int, optional): torch CPU threads in each case (default: torch's).
        log (callable): Progress printer.
        on_case (callable, optional): Called with the results so far after every
            case (e.g. to save partial results of a long sweep).

    Returns:
        list of dict: per (backbone, batch, size), in input order: ``status``,
        ``median_ms``, ``images_per_s``, ``mem_mb``, ``times_ms``, ``params``, ...
    """
    specs = [resolve_spec(b) for b in backbones]
    names = [s['name'] for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f'backbone names must be unique, got {names}.')
    sizes = sorted({parse_size(s) for s in sizes}, key=lambda s: math.prod(size_hw(s)))
    merged: Dict[tuple, Dict[str, Any]] = {}
    failed = set()  # (name, batch): a smaller size failed, larger ones are skipped
    for rnd in range(rounds):
        for size in sizes:
            for batch in batches:
                for spec in specs:
                    key = (spec['name'], batch, size)
                    if (spec['name'], batch) in failed:
                        merged.setdefault(key, dict(
                            name=spec['name'], size=size, batch=batch,
                            pixels=math.prod(size_hw(size)),
                            train=train, device=device, status='skipped', times_ms=[],
                            mem_mb=None, error='a smaller size failed'))
                        continue
                    case = dict(spec=spec, size=size, batch=batch, train=train, warmup=warmup,
                                repeat=repeat, device=device, threads=threads)
                    t0 = time.time()
                    if isolate:
                        res = _run_isolated(case, timeout_per_case)
                    else:
                        res = measure_case(spec, size, batch, train, warmup, repeat, device,
                                           threads)
                    prev = merged.get(key)
                    if prev is not None and prev['status'] == 'ok' and res['status'] == 'ok':
                        prev['times_ms'] += res['times_ms']
                        prev['mem_mb'] = max(prev['mem_mb'] or 0, res['mem_mb'] or 0)
                    else:
                        merged[key] = res
                    if res['status'] != 'ok':
                        failed.add((spec['name'], batch))
                    med = statistics.median(res['times_ms']) if res['times_ms'] else float('nan')
                    log(f'[round {rnd + 1}/{rounds}] {spec["name"]:>10s} {str(size):>8s}px '
                        f'bs{batch}: '
                        f'{res["status"]:>7s} {med:10.1f} ms  mem {res.get("mem_mb") or 0:9.1f} MB'
                        f'  ({time.time() - t0:.1f} s)' +
                        (f'  {res.get("error")}' if res['status'] != 'ok' else ''))
                    if on_case is not None:
                        on_case(_ordered(merged, specs, batches, sizes))
    return _ordered(merged, specs, batches, sizes)


def _ordered(merged, specs, batches, sizes) -> List[Dict[str, Any]]:
    results = []
    for spec in specs:
        for batch in batches:
            for size in sizes:
                res = merged.get((spec['name'], batch, size))
                if res is None:
                    continue
                if res['times_ms']:
                    res['median_ms'] = statistics.median(res['times_ms'])
                    res['images_per_s'] = batch / (res['median_ms'] / 1e3)
                else:
                    res['median_ms'] = res['images_per_s'] = None
                results.append(res)
    return results


def merge_results(paths: Sequence[str]) -> tuple:
    """Results and machine info of several JSON outputs (e.g. one run per size).

    A case measured in more than one file keeps the last file's result.
    Returns ``(results, machine_info_of_the_first_file, train)``.
    """
    merged: Dict[tuple, Dict[str, Any]] = {}
    info, train = None, False
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        info = info or data['machine']
        train = data.get('train', False)
        for r in data['results']:
            merged[(r['name'], r['batch'], r['size'])] = r
    names = list(dict.fromkeys(k[0] for k in merged))
    results = sorted(merged.values(), key=lambda r: (names.index(r['name']), r['batch'],
                                                     r['pixels']))
    return results, info, train


def fit_exponent(pixels: Sequence[float], values: Sequence[Optional[float]]) -> Optional[float]:
    """Least-squares slope of log(value) against log(pixels); None with < 2 usable points."""
    pts = [(math.log(p), math.log(v)) for p, v in zip(pixels, values)
           if v is not None and v > 0 and p > 0]
    if len({x for x, _ in pts}) < 2:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    sxx = sum((x - mx)**2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sxx


def summarize(results: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Per (backbone, batch): parameters and the fitted time/memory exponents."""
    groups: Dict[tuple, List[Dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r['name'], r['batch']), []).append(r)
    rows = []
    for (name, batch), rs in groups.items():
        ok = sorted((r for r in rs if r['status'] == 'ok'), key=lambda r: r['pixels'])
        px = [r['pixels'] for r in ok]
        rows.append(dict(
            name=name, batch=batch,
            params=next((r.get('params') for r in rs if r.get('params')), None),
            time_exponent=fit_exponent(px, [r['median_ms'] for r in ok]),
            time_exponent_tail=fit_exponent(px[-2:], [r['median_ms'] for r in ok[-2:]]),
            mem_exponent=fit_exponent(px, [r['mem_mb'] for r in ok]),
            sizes_ok=[r['size'] for r in ok],
        ))
    return rows


def _fmt(value, spec='.1f', empty='–'):
    return empty if value is None else format(value, spec)


def markdown_table(results: Sequence[Dict[str, Any]], summary: Sequence[Dict[str, Any]],
                   label: str = '', train: bool = False) -> str:
    """The summary (params, exponents) and the per-case table, as Markdown."""
    what = 'forward+backward' if train else 'forward'
    lines = []
    if label:
        lines += [f'Measured on: {label}; {what}.', '']
    lines += ['| backbone | batch | params (M) | time exponent (fit) | time exponent (2 largest) '
              '| memory exponent (fit) |', '|---|---:|---:|---:|---:|---:|']
    for s in summary:
        params = s['params'] and s['params'] / 1e6
        lines.append(f"| {s['name']} | {s['batch']} | {_fmt(params, '.2f')}"
                     f" | {_fmt(s['time_exponent'], '.2f')}"
                     f" | {_fmt(s['time_exponent_tail'], '.2f')}"
                     f" | {_fmt(s['mem_exponent'], '.2f')} |")
    lines += ['', f'| backbone | size | batch | {what} ms (median) | images/s | peak memory (MB) '
              '| status |', '|---|---:|---:|---:|---:|---:|---|']
    for r in results:
        status = r['status'] if r['status'] == 'ok' else f"{r['status']}: {r.get('error', '')}"
        status = status.replace('|', '/')
        lines.append(f"| {r['name']} | {r['size']} | {r['batch']} | {_fmt(r.get('median_ms'))} "
                     f"| {_fmt(r.get('images_per_s'), '.2f')} | {_fmt(r.get('mem_mb'))} "
                     f"| {status} |")
    return '\n'.join(lines) + '\n'


def plot(results: Sequence[Dict[str, Any]], path: str, title: str = '') -> None:
    """Log-log time and memory against pixels, one line per backbone (and batch)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    groups: Dict[tuple, List[Dict[str, Any]]] = {}
    for r in results:
        if r['status'] == 'ok':
            groups.setdefault((r['name'], r['batch']), []).append(r)
    batches = {b for _, b in groups}
    for (name, batch), rs in groups.items():
        rs = sorted(rs, key=lambda r: r['pixels'])
        label = name if len(batches) == 1 else f'{name} (bs {batch})'
        px = [r['pixels'] for r in rs]
        axes[0].plot(px, [r['median_ms'] for r in rs], marker='o', label=label)
        mem = [(p, r['mem_mb']) for p, r in zip(px, rs) if r['mem_mb']]
        if mem:
            axes[1].plot(*zip(*mem), marker='o', label=label)
    for ax, ylabel in zip(axes, ('time per batch (ms)', 'peak memory (MB)')):
        ax.set_xscale('log')
        ax.set_yscale('log')
        ax.set_xlabel('pixels (H·W)')
        ax.set_ylabel(ylabel)
        ax.grid(True, which='both', alpha=0.3)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(results, summary, info, out_dir: str, train: bool = False,
                  stem: str = 'backbone_scaling', with_plot: bool = True) -> Dict[str, str]:
    """Write ``<stem>.md``, ``<stem>.json`` and (``with_plot``) ``<stem>.png`` into ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {ext: os.path.join(out_dir, f'{stem}.{ext}') for ext in ('md', 'json', 'png')}
    table = markdown_table(results, summary, info.get('label', ''), train)
    with open(paths['md'], 'w') as f:
        f.write(table)
    with open(paths['json'], 'w') as f:
        json.dump(dict(machine=info, train=train, summary=summary, results=results), f, indent=1)
    if with_plot:
        plot(results, paths['png'],
             title=f"{'fwd+bwd' if train else 'forward'} — {info.get('label', '')}")
    else:
        paths.pop('png')
    return paths


def _worker_main(payload: str) -> None:
    case = json.loads(payload)
    res = measure_case(case['spec'], case['size'], case['batch'], case['train'], case['warmup'],
                       case['repeat'], case['device'], case.get('threads'))
    sys.stdout.write('\n' + RESULT_MARKER + json.dumps(res) + '\n')
    sys.stdout.flush()


# --------------------------------------------------------------------------------------
# command line (tools/analysis/benchmark_backbones.py)
# --------------------------------------------------------------------------------------
USAGE = """Resolution-scaling benchmark: time, memory and images/s of backbones against pixels.

Examples::

    # the default sweep (ours + Swin-T + ViT-Ti at 224..2048), on the GPU if there is one
    python tools/analysis/benchmark_backbones.py --out-dir work_dirs/scaling
    # CPU, forward, batch 1, three sizes
    python tools/analysis/benchmark_backbones.py --device cpu --sizes 224 512 1024 --repeat 3
    # Vim vs DeiT at 1248 (the Vim paper's comparison), forward+backward
    python tools/analysis/benchmark_backbones.py --backbones Vim-Ti ViT-Ti --sizes 1248 --train
    # issue 21's table: each model against its attention peer, interleaved in one process
    python tools/analysis/benchmark_backbones.py --side-by-side --sizes 512 1024 --rounds 3
    # ... and the code before a change beside it (a checkout of an older commit)
    python tools/analysis/benchmark_backbones.py --side-by-side --baseline /path/to/old/tree
    # HRVMamba and its peers (HRNet-W32, HRFormer-S) at the pose and segmentation sizes
    python tools/analysis/benchmark_backbones.py --device cpu --threads 1 --sizes 256x192 512 \\
        --backbones HRVMamba-T HRVMamba-S HRNet-W32 HRFormer-S --rounds 2 --repeat 3
    # a custom arch (JSON model config, mmengine registry)
    python tools/analysis/benchmark_backbones.py --backbones \\
        'mini={"type": "MLLA", "arch": {"embed_dims": 32, "depths": [1,1,1,1],
               "num_heads": [1,1,1,1]}}'

Writes <out-dir>/<stem>.{md,json,png} (stem: backbone_scaling); the method (isolation, timing,
memory) is described in mlla_mm/analysis/benchmark.py. With --side-by-side:
<out-dir>/side_by_side.{md,json}, method in mlla_mm/analysis/side_by_side.py.
"""


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=USAGE,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--backbones', nargs='+', default=list(DEFAULT_BACKBONES),
                        help=f'preset names ({", ".join(PRESETS)}) or NAME=JSON model configs')
    parser.add_argument('--sizes', nargs='+', type=parse_size, default=list(DEFAULT_SIZES),
                        help='input sizes: pixels per side (square) or HxW, e.g. 256x192')
    parser.add_argument('--batch', nargs='+', type=int, default=[1], help='batch sizes')
    parser.add_argument('--train', action='store_true', help='time forward + backward')
    parser.add_argument('--warmup', type=int, default=2, help='untimed passes per case')
    parser.add_argument('--repeat', type=int, default=10, help='timed passes per case')
    parser.add_argument('--rounds', type=int, default=None,
                        help='sweeps over all cases (interleaved; times pooled); default 1, '
                        '3 with --side-by-side')
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
    parser.add_argument('--side-by-side', action='store_true',
                        help='all backbones in one process, interleaved, forward and training '
                        'step, ratios to their peers (Swin-T, ViT-Ti); training memory per '
                        'model in fresh processes (mlla_mm/analysis/side_by_side.py)')
    parser.add_argument('--modes', nargs='+', default=['forward', 'train'],
                        choices=['forward', 'train'], help='--side-by-side: what to time')
    parser.add_argument('--workers', type=int, default=1,
                        help='--side-by-side: worker processes per checkout (rounds pooled)')
    parser.add_argument('--memory-sizes', nargs='*', type=int, default=[512],
                        help='--side-by-side: sizes of the training-memory measurement')
    parser.add_argument('--memory-repeats', type=int, default=1,
                        help='--side-by-side: fresh processes per memory measurement (median; '
                        'one moves by about ±5 %%)')
    parser.add_argument('--baseline', default=None, metavar='TREE',
                        help='--side-by-side: also run the code of this source tree (before), '
                        'alternating with this one')
    parser.add_argument('--onednn-linear-all', action='store_true',
                        help="--side-by-side: every model's plain nn.Linear layers (the peers' "
                        "too) on the package's oneDNN linear, taking the GEMM library out of "
                        'the ratios (mlla_mm/models/layers/linear.py)')
    parser.add_argument('--merge', nargs='+', default=None, metavar='JSON',
                        help='measure nothing: merge earlier JSON outputs (e.g. one run per '
                        'size) into one table, JSON and plot')
    parser.add_argument('--worker', help=argparse.SUPPRESS)  # one isolated case (internal)
    return parser.parse_args(argv)


def side_by_side(args) -> None:
    """``--side-by-side``: each model against its attention peer (and a baseline tree)."""
    from mlla_mm.analysis.side_by_side import DEFAULT_BACKBONES as SBS
    from mlla_mm.analysis.side_by_side import markdown, run_side_by_side
    backbones = args.backbones if args.backbones != list(DEFAULT_BACKBONES) else list(SBS)
    sizes = args.sizes if args.sizes != list(DEFAULT_SIZES) else [512, 1024]
    checkouts = [('this', None)] if not args.baseline else [('before', args.baseline),
                                                             ('after', None)]
    result = run_side_by_side(backbones, sizes, args.modes, args.rounds or 3, args.workers,
                              args.memory_sizes, checkouts, args.threads,
                              args.timeout_per_case * 10, memory_repeats=args.memory_repeats,
                              convert_linear=args.onednn_linear_all)
    os.makedirs(args.out_dir, exist_ok=True)
    table = markdown(result)
    with open(os.path.join(args.out_dir, 'side_by_side.md'), 'w') as f:
        f.write(table)
    with open(os.path.join(args.out_dir, 'side_by_side.json'), 'w') as f:
        json.dump(result, f, indent=1)
    print(table)
    print(f'written: {args.out_dir}/side_by_side.{{md,json}}')


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        _worker_main(args.worker)
        return
    if args.side_by_side:
        side_by_side(args)
        return
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
                            args.repeat, args.rounds or 1, device, args.timeout_per_case,
                            isolate=not args.no_isolate, threads=args.threads,
                            on_case=save_partial)
    summary = summarize(results)
    paths = write_outputs(results, summary, info, args.out_dir, args.train, args.stem)
    print(markdown_table(results, summary, info['label'], args.train))
    print('written: ' + ', '.join(paths.values()))


if __name__ == '__main__':
    main()

"""Backbones against their attention peers, side by side in one process (issue 21's table).

A shared machine drifts by tens of percent within minutes, so absolute times say little; what
is comparable is the ratio of two models timed *interleaved* in one process. This module builds
every backbone once in one worker process and times them in rounds -- each round runs every
(mode, size) case for every model, one after the other -- and reports the median of the
rounds and each model's ratio to its peer (:data:`PEERS`: Swin-T for the hierarchical models,
ViT-Ti for Vim-Ti).

* **forward**: eval mode, ``torch.no_grad()``.
* **train**: train mode, forward + backward of the mean of all outputs, gradients dropped
  after each step (``p.grad = None``), as :mod:`mlla_mm.analysis.benchmark`.
* **allocator**: the timing workers tune malloc as ``tools/train.py`` does
  (:mod:`mlla_mm.utils.cpu_allocator`: freed memory kept for the next pass, no page faults
  per step) -- this tree's module, so a baseline tree from before it is timed the same way;
  ``MLLA_CPU_ALLOCATOR=default`` times glibc's defaults. The memory workers keep the defaults.
* **peers' GEMM** (``convert_linear``, ``--onednn-linear-all``): every plain ``nn.Linear`` of
  every model -- the peers' too -- made the package's oneDNN linear
  (:func:`mlla_mm.models.layers.linear.convert_linear_layers`), so the ratios no longer include
  the GEMM library our backbones use and the peers' code does not.
* **memory**: the growth of the process's peak resident memory during one training step, the
  peak reset just before it, each model in a fresh process (one small pass first, so one-time
  costs such as loading compiled kernels are not counted; see
  :func:`mlla_mm.analysis.benchmark.measure_case`).

**Before and after in one run**: ``checkouts`` names other source trees (e.g. the code before
a change, a ``git worktree`` of an older commit). Every round then runs one worker per
checkout, alternating, each importing ``mlla_mm`` and ``mlla_kernels`` from its own tree
(``<tree>/mlla_kernels``, or ``<tree>/kernels`` in trees from before it was renamed), with
the same timing code (this file). A checkout's
ratios to the peers come from its own worker, so the two can be compared although they ran
at different moments.
"""
import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple


def _backbone_cases():
    """The module with the presets and measuring helpers, imported by absolute name (this
    file also runs as a script: the workers), from the tree a worker measures: older trees
    (baselines) kept the same names in mlla_mm.analysis.benchmark, and before the analysis
    package in mlla_mm.utils.benchmark."""
    for name in ('mlla_mm.analysis.backbone_cases', 'mlla_mm.analysis.benchmark',
                 'mlla_mm.utils.benchmark'):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError('no mlla_mm.analysis.backbone_cases in this tree')


_cases = _backbone_cases()
PRESETS, build_backbone, machine_info, resolve_spec = (
    _cases.PRESETS, _cases.build_backbone, _cases.machine_info, _cases.resolve_spec)
_loss, _proc_status_kb, _reset_peak_rss = (
    _cases._loss, _cases._proc_status_kb, _cases._reset_peak_rss)

MARKER = '@@SIDE_BY_SIDE@@'
#: each backbone's attention peer
PEERS = {'MLLA-T': 'Swin-T', 'VMamba-T': 'Swin-T', 'MambaOut-T': 'Swin-T', 'Vim-Ti': 'ViT-Ti'}
DEFAULT_BACKBONES = ('MLLA-T', 'VMamba-T', 'Vim-Ti', 'MambaOut-T', 'Swin-T', 'ViT-Ti')
MODES = ('forward', 'train')


# --------------------------------------------------------------------------------------
# in the worker
# --------------------------------------------------------------------------------------
def _build(spec, convert_linear: bool = False):
    """The backbone of ``spec``; with ``convert_linear`` its plain nn.Linear layers on oneDNN
    (a tree without :mod:`mlla_mm.models.layers.linear` keeps them)."""
    model = build_backbone(spec)
    if convert_linear:
        try:
            from mlla_mm.models.layers.linear import convert_linear_layers
        except ImportError:
            return model
        convert_linear_layers(model)
    return model


def _one_pass(model, x, train: bool):
    import torch
    if train:
        _loss(model(x)).backward()
        for p in model.parameters():
            p.grad = None
    else:
        with torch.no_grad():
            model(x)


def time_interleaved(backbones: Sequence[Any], cases: Sequence[Tuple[str, int]], rounds: int,
                     threads: Optional[int] = None, seed: int = 0,
                     log: Callable[[str], None] = lambda s: None,
                     convert_linear: bool = False) -> Dict[str, Any]:
    """Build every backbone, run each case once untimed, then ``rounds`` interleaved rounds.

    Args:
        backbones: preset names, ``NAME=JSON`` strings or spec dicts.
        cases: ``(mode, size)`` pairs, mode 'forward' or 'train'.
        rounds: timed passes per (backbone, case), one per round.
        threads: torch CPU threads (default: torch's).
        seed: torch seed before each build (same weights in every worker).
        convert_linear: every model's plain nn.Linear layers on oneDNN (see the module).

    Returns:
        ``{'times': {name: {'<mode>@<size>': [ms per round]}}, 'params': {name: count}}``.
    """
    import torch
    if threads:
        torch.set_num_threads(threads)
    specs = [resolve_spec(b) for b in backbones]
    models, params = {}, {}
    for spec in specs:
        torch.manual_seed(seed)
        models[spec['name']] = _build(spec, convert_linear)
        params[spec['name']] = sum(p.numel() for p in models[spec['name']].parameters())
    inputs = {size: torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(seed))
              for _, size in cases}
    times: Dict[str, Dict[str, List[float]]] = {name: {} for name in models}
    for name, model in models.items():      # one-time costs: kernels compiled or loaded, ...
        for mode, size in cases:
            model.train(mode == 'train')
            _one_pass(model, inputs[size], mode == 'train')
    for rnd in range(rounds):
        for mode, size in cases:
            for name, model in models.items():
                model.train(mode == 'train')
                start = time.perf_counter()
                _one_pass(model, inputs[size], mode == 'train')
                ms = (time.perf_counter() - start) * 1e3
                times[name].setdefault(f'{mode}@{size}', []).append(ms)
                log(f'round {rnd + 1}/{rounds} {mode:7s} {size:5d} {name:>10s}: {ms:9.1f} ms')
    return dict(times=times, params=params)


def train_memory(backbone: Any, size: int, threads: Optional[int] = None,
                 seed: int = 0, convert_linear: bool = False) -> Optional[float]:
    """MB of peak-RSS growth of one training step at ``size`` (call in a fresh process)."""
    import torch
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = _build(resolve_spec(backbone), convert_linear)
    model.train()   # not chained: some train() (mmdet's Swin) return None
    _one_pass(model, torch.randn(1, 3, min(size, 64), min(size, 64)), True)
    x = torch.randn(1, 3, size, size)
    before = _proc_status_kb('VmRSS')
    if not _reset_peak_rss():
        return None
    _one_pass(model, x, True)
    peak = _proc_status_kb('VmHWM')
    return max(peak - before, 0) / 1024 if before and peak else None


# --------------------------------------------------------------------------------------
# driving the workers
# --------------------------------------------------------------------------------------
def _tree_env(tree: Optional[str]) -> Dict[str, str]:
    """Environment whose ``mlla_mm`` and ``mlla_kernels`` come from ``tree`` (None: ours).
    Without the OpenMP spin count our import set (:mod:`mlla_kernels.openmp`): each tree's
    own import decides, as in its tools (a value the user set stays)."""
    from mlla_kernels import openmp
    env = dict(os.environ)
    if openmp.set_by_import:
        env.pop('GOMP_SPINCOUNT', None)
    if tree is None:
        env['PYTHONPATH'] = os.pathsep.join(p for p in sys.path if p)
        return env
    tree = os.path.abspath(tree)
    shim = tempfile.mkdtemp(prefix='sbs_shim_')
    if not os.path.isdir(os.path.join(tree, 'mlla_kernels')):   # before 2026-12-04: kernels/
        os.symlink(os.path.join(tree, 'kernels'), os.path.join(shim, 'mlla_kernels'))
    ours = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
    # the tree first; this file's own package only for what the tree lacks (never: the
    # worker imports the tree's own benchmark module: mlla_mm.analysis or, before it, mlla_mm.utils)
    rest = [p for p in sys.path if p and os.path.abspath(p) != ours
            and not p.endswith('.shim')]
    env['PYTHONPATH'] = os.pathsep.join([shim, tree] + rest)
    return env


def _run_worker(kind: str, payload: Dict[str, Any], tree: Optional[str],
                timeout: Optional[float]) -> Any:
    cmd = [sys.executable, os.path.abspath(__file__), f'--{kind}', json.dumps(payload)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env=_tree_env(tree))
    for line in proc.stdout.splitlines():
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    tail = ' | '.join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
    raise RuntimeError(f'{kind} worker ({tree or "this tree"}) failed, exit {proc.returncode}:'
                       f' {tail}')


def run_side_by_side(backbones: Sequence[Any] = DEFAULT_BACKBONES,
                     sizes: Sequence[int] = (512, 1024), modes: Sequence[str] = MODES,
                     rounds: int = 3, workers: int = 1, memory_sizes: Sequence[int] = (512,),
                     checkouts: Sequence[Tuple[str, Optional[str]]] = (('this', None),),
                     threads: Optional[int] = None, timeout: Optional[float] = 3600,
                     log: Callable[[str], None] = print,
                     memory_repeats: int = 1, convert_linear: bool = False) -> Dict[str, Any]:
    """Time every backbone per mode and size, interleaved, and measure training memory.

    Args:
        backbones: preset names (:data:`~mlla_mm.analysis.backbone_cases.PRESETS`), ``NAME=JSON``
            strings or spec dicts. A backbone's peer (:data:`PEERS`) should be among them.
        sizes: square input sizes.
        modes: 'forward' and/or 'train'.
        rounds: interleaved timed rounds per worker.
        workers: workers per checkout (run alternating over checkouts); the rounds of all
            of a checkout's workers are pooled.
        memory_sizes: sizes at which training memory is measured (fresh process per model);
            empty: none.
        memory_repeats: fresh processes per model, checkout and size, run alternating; the
            median is reported (one measurement moves by about ±5 % on a 2-core box: glibc's
            heap), every sample is kept under ``'memory_samples'``.
        checkouts: ``(label, tree)`` pairs; tree None is the code this file belongs to.
        threads: torch CPU threads in the workers.
        timeout: seconds per worker.
        convert_linear: every model's plain nn.Linear layers (the peers' too) on oneDNN.

    Returns:
        ``{'checkouts': {label: {'times': {name: {case: [ms]}}, 'memory': {name: {size: MB}},
        'memory_samples': {name: {size: [MB]}}, 'params': {...}}}, 'cases': [...],
        'backbones': [...], 'memory_repeats': n, 'machine': {...}}``.
    """
    specs = [resolve_spec(b) for b in backbones]
    names = [s['name'] for s in specs]
    cases = [(mode, size) for mode in modes for size in sorted(sizes)]
    result: Dict[str, Any] = dict(backbones=names, cases=[f'{m}@{s}' for m, s in cases],
                                  rounds=rounds, workers=workers, threads=threads,
                                  memory_repeats=memory_repeats, convert_linear=convert_linear,
                                  machine=machine_info('cpu'),
                                  checkouts={})
    for label, _ in checkouts:
        result['checkouts'][label] = dict(times={n: {} for n in names},
                                          memory={n: {} for n in names},
                                          memory_samples={n: {} for n in names})
    for w in range(workers):
        for label, tree in checkouts:
            start = time.time()
            out = _run_worker('worker', dict(backbones=specs, cases=cases, rounds=rounds,
                                             threads=threads, convert_linear=convert_linear),
                              tree, timeout)
            entry = result['checkouts'][label]
            entry['params'] = out['params']
            entry['allocator'] = out.get('allocator')
            for name, per_case in out['times'].items():
                for case, ms in per_case.items():
                    entry['times'][name].setdefault(case, []).extend(ms)
            log(f'worker {w + 1}/{workers} [{label}] done in {time.time() - start:.0f} s: ' +
                ', '.join(f'{n} ' + '/'.join(f"{statistics.median(v):.0f}"
                                             for v in out['times'][n].values())
                          for n in names))
    for size in memory_sizes:
        for _ in range(memory_repeats):
            for name, spec in zip(names, specs):
                for label, tree in checkouts:
                    mb = _run_worker('memory-worker',
                                     dict(backbone=spec, size=size, threads=threads,
                                          convert_linear=convert_linear), tree, timeout)
                    per_size = result['checkouts'][label]['memory_samples'][name]
                    per_size.setdefault(str(size), []).extend([] if mb is None else [mb])
                    log(f'memory [{label}] {name} train {size}: {mb:.0f} MB' if mb is not None
                        else f'memory [{label}] {name}: not measurable here')
        for label, _ in checkouts:
            entry = result['checkouts'][label]
            for name in names:
                samples = entry['memory_samples'][name].get(str(size), [])
                entry['memory'][name][str(size)] = _median(samples)
    return result


def _median(values):
    return statistics.median(values) if values else None


def _ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


def summary_rows(result: Dict[str, Any], label: str) -> List[Dict[str, Any]]:
    """Per backbone of one checkout: median ms per case, memory, and ratios to its peer."""
    entry = result['checkouts'][label]
    rows = []
    for name in result['backbones']:
        med = {case: _median(entry['times'][name].get(case, [])) for case in result['cases']}
        mem = {size: mb for size, mb in entry['memory'].get(name, {}).items()}
        peer = PEERS.get(name)
        row = dict(name=name, peer=peer if peer in result['backbones'] else None, ms=med,
                   memory=mem, ratio={}, memory_ratio={})
        if row['peer']:
            for case in result['cases']:
                row['ratio'][case] = _ratio(med[case],
                                            _median(entry['times'][peer].get(case, [])))
            for size, mb in mem.items():
                row['memory_ratio'][size] = _ratio(mb, entry['memory'][peer].get(size))
        rows.append(row)
    return rows


def _f(value, spec='.0f'):
    return '–' if value is None else format(value, spec)


def markdown(result: Dict[str, Any]) -> str:
    """One table per checkout (ms, MB, ratios to the peer) and, with several checkouts, the
    ratios side by side."""
    cases = result['cases']
    mem_sizes = sorted({s for e in result['checkouts'].values() for m in e['memory'].values()
                        for s in m}, key=int)
    m = result['machine']
    lines = [f"Measured on {m.get('label', '')}, {m.get('date', '')}; batch 1, "
             f"{result['threads'] or m.get('threads')} threads, median of "
             f"{result['rounds'] * result['workers']} interleaved rounds per checkout"
             + (f"; memory: median of {result['memory_repeats']} fresh processes"
                if result.get('memory_repeats', 1) > 1 else '') + '; malloc: '
             + ', '.join(sorted({str(e.get('allocator')) for e in result['checkouts'].values()}))
             + ('; every nn.Linear (the peers\' too) on oneDNN' if result.get('convert_linear')
                else '') + '.', '']

    def head(case):
        mode, size = case.split('@')
        return f"{'fwd' if mode == 'forward' else 'train step'} {size}², ms"
    for label in result['checkouts']:
        rows = summary_rows(result, label)
        if len(result['checkouts']) > 1:
            lines += [f'**{label}**', '']
        lines.append('| backbone | ' + ' | '.join(head(c) for c in cases)
                     + ''.join(f' | train {s}², peak MB' for s in mem_sizes)
                     + ' | ratio to its peer: ' + ' / '.join(
                         [head(c).replace(', ms', '') for c in cases]
                         + [f'train mem {s}²' for s in mem_sizes]) + ' |')
        lines.append('|---|' + '---:|' * (len(cases) + len(mem_sizes)) + '---|')
        for row in rows:
            ratios = ([_f(row['ratio'].get(c), '.2f') + '×' for c in cases]
                      + [_f(row['memory_ratio'].get(s), '.2f') + '×' for s in mem_sizes])
            peer = f" {row['peer']}" if row['peer'] else ''
            lines.append(f"| {row['name']} | " + ' | '.join(_f(row['ms'][c]) for c in cases)
                         + ''.join(f" | {_f(row['memory'].get(s))}" for s in mem_sizes)
                         + ' | ' + (' / '.join(ratios) + peer if row['peer'] else '—') + ' |')
        lines.append('')
    if len(result['checkouts']) > 1:
        labels = list(result['checkouts'])
        lines += ['Ratios to the peer, ' + ' → '.join(labels) + ':', '',
                  '| backbone | ' + ' | '.join(head(c).replace(', ms', '') for c in cases)
                  + ''.join(f' | train mem {s}²' for s in mem_sizes) + ' |',
                  '|---|' + '---:|' * (len(cases) + len(mem_sizes))]
        per_label = {label: {r['name']: r for r in summary_rows(result, label)}
                     for label in labels}
        for name in result['backbones']:
            if not per_label[labels[0]][name]['peer']:
                continue
            cells = []
            for c in cases:
                cells.append(' → '.join(_f(per_label[lb][name]['ratio'].get(c), '.2f')
                                        for lb in labels))
            for s in mem_sizes:
                cells.append(' → '.join(_f(per_label[lb][name]['memory_ratio'].get(s), '.2f')
                                        for lb in labels))
            lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
        lines.append('')
    return '\n'.join(lines)


def _tools_allocator() -> bool:
    """Tune malloc as the training tools do (:mod:`mlla_mm.utils.cpu_allocator`), loaded from
    this file's tree whatever tree the worker measures."""
    import importlib.util
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'utils',
                        'cpu_allocator.py')
    spec = importlib.util.spec_from_file_location('_tools_cpu_allocator', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.keep_freed_memory()


def main(argv=None):
    parser = argparse.ArgumentParser(description='side-by-side worker (internal)')
    parser.add_argument('--worker')
    parser.add_argument('--memory-worker')
    args = parser.parse_args(argv)
    if args.worker:
        p = json.loads(args.worker)
        kept = _tools_allocator()
        out = time_interleaved(p['backbones'], [tuple(c) for c in p['cases']], p['rounds'],
                               p.get('threads'), log=lambda s: print(s, file=sys.stderr),
                               convert_linear=p.get('convert_linear', False))
        out['allocator'] = 'freed memory kept (as tools/train.py)' if kept else 'glibc defaults'

    else:
        p = json.loads(args.memory_worker)
        out = train_memory(p['backbone'], p['size'], p.get('threads'),
                           convert_linear=p.get('convert_linear', False))
    sys.stdout.write('\n' + MARKER + json.dumps(out) + '\n')
    sys.stdout.flush()


if __name__ == '__main__':
    main()


__all__ = ['PEERS', 'PRESETS', 'run_side_by_side', 'time_interleaved', 'train_memory',
           'summary_rows', 'markdown']

"""Benchmark the scan backends at the shapes VMamba-T, Vim-Ti and MHS-VM meet.

    python -m mlla_kernels.benchmark                     # CPU: every shape
    python -m mlla_kernels.benchmark --device cuda --batch 1,8 --json gpu.json
    python -m mlla_kernels.benchmark --shapes 'vim_ti-*' --repeat 5
    python -m mlla_kernels.benchmark --shapes 'vmamba_t-512-*' --against ../other/kernels

Results go to ``work_dirs/benchmark/kernels.json`` (``--json`` to change). ``--against DIR``
imports another checkout's kernel package (``DIR`` holding its ``__init__.py``) under the name
``mlla_kernels_before`` and times its backends as ``before:<backend>`` in the same process,
interleaved with ours (one timed call of each runner per round, best of the rounds): the
before/after ratios are then measured under the same load. (Its numba kernels compile into
``NUMBA_CACHE_DIR`` if set -- set it when that checkout is read-only.)

For every shape and backend: forward time (no grad) and forward+backward time, the time per
state update (batch x routes x Di x L x N of them per call), and the achieved
bandwidth = bytes that must move / time. Minimum traffic: the forward reads every input once and
writes y; forward+backward also re-reads the inputs, reads dy and writes one gradient per input
(3 x inputs + 2 x outputs). The roofline is the measured device copy bandwidth (read + write of a
large buffer). Peers run in the same process: on CPU mambapy's pure-PyTorch parallel scan
(``mambapy.pscan``, Blelloch), on GPU mamba-ssm's CUDA ``selective_scan_fn`` when importable
(the torch backend is always there as well). Our backends get the inputs in the layout the
backbones hand them (channels innermost: VMamba's channels-last maps, Vim's token-major
(B, 2, L, Di) memory, as views); peers get theirs already in their preferred layout (routed /
flipped copies made outside the timed region), so they never pay for layout.

Shapes (docs/vmamba.md, docs/vim.md): VMamba-T has C = 96 * 2^i, ssm_ratio 1 (Di = C), d_state 1, K = 4
routes, maps of H/4 .. H/32 (ceil halving) and depths 2, 2, 8, 2; its op is
``cross_scan_selective_scan`` (= a (batch, 4*Di, HW) scan with G = 4). Vim-Ti has Di = 384,
N = 16, L = (H/16)(W/16), 24 layers, each one ``bidirectional_selective_scan``. MHS-VM
(arXiv 2406.05992; 4 heads, 256² input): VM-UNet levels of d = 96 * 2^i channels on maps
64², 32², 16², 8², 3/4/4/4 blocks per level (encoder + decoder); each block's heads C, X, S, Z
scan s = d/4 channels with N = 16 over their four routes (a pair of walks and their reverses),
apart (``routed_selective_scan(merge=False)``); next to them the merged raster cross-scan of
the same size (``mhs_4h-256-s<i>-cross``).
"""
import argparse
import fnmatch
import importlib.util
import json
import math
import os
import platform
import sys
import time
from typing import Dict, List

import torch
import torch.nn.functional as F

from . import available_backends

VMAMBA_T = dict(dims=(96, 192, 384, 768), depths=(2, 2, 8, 2), d_state=1, directions=4)
VIM_TI = dict(dim=384, d_state=16, depth=24, patch=16)
#: MHS-VM's VM-UNet at 256²: level dims, blocks per level (encoder 2,2,2,2 + decoder 1,2,2,2)
MHS_VMUNET = dict(size=256, dims=(96, 192, 384, 768), blocks=(3, 4, 4, 4), heads=4, d_state=16)
#: the heads' routes, in upstream's order [a, a~, b, b~]
MHS_HEAD_ROUTES = {
    'C': ('snake_row', 'snake_row~', 'snake_col', 'snake_col~'),
    'X': ('zigzag', 'zigzag~', 'zigzag_mirror', 'zigzag_mirror~'),
    'S': ('spiral', 'spiral~', 'spiral_flip', 'spiral_flip~'),
    'Z': ('row', 'row~', 'col', 'col~'),
}
#: a plain selective scan as Mamba-130m's mixer runs it: d_inner 1536, N = 16, gate z, (b, D, L)
MAMBA_130M = dict(dim=1536, d_state=16, depth=24, length=1024)
DEFAULT_JSON = os.path.join('work_dirs', 'benchmark', 'kernels.json')
# every shape by default on CPU too (a few minutes: the torch backend and mambapy dominate)
CPU_DEFAULT_SHAPES = ['*']
QUICK_SHAPES = ['vmamba_t-512-s0', 'vmamba_t-512-s2', 'vim_ti-512']


def all_shapes() -> List[Dict]:
    """Every (model, input size, stage) op the two backbones run, with its count per forward."""
    shapes = []
    for size in (512, 1024):
        side = size
        for stage, (dim, depth) in enumerate(zip(VMAMBA_T['dims'], VMAMBA_T['depths'])):
            side = math.ceil(side / 4) if stage == 0 else math.ceil(side / 2)
            shapes.append(dict(name=f'vmamba_t-{size}-s{stage}', op='cross_scan', dim=dim,
                               height=side, width=side, d_state=VMAMBA_T['d_state'],
                               directions=VMAMBA_T['directions'], count=depth))
        grid = math.ceil(size / VIM_TI['patch'])
        shapes.append(dict(name=f'vim_ti-{size}', op='bidirectional', dim=VIM_TI['dim'],
                           length=grid * grid, d_state=VIM_TI['d_state'], count=VIM_TI['depth']))
    shapes.append(dict(name=f'mamba_130m-l{MAMBA_130M["length"]}', op='selective',
                       dim=MAMBA_130M['dim'], length=MAMBA_130M['length'],
                       d_state=MAMBA_130M['d_state'], count=MAMBA_130M['depth']))
    mhs = MHS_VMUNET
    for level, (dim, blocks) in enumerate(zip(mhs['dims'], mhs['blocks'])):
        side = mhs['size'] // 4 // 2 ** level
        common = dict(dim=dim // mhs['heads'], height=side, width=side, d_state=mhs['d_state'],
                      directions=4, count=blocks)
        for head, routes in MHS_HEAD_ROUTES.items():
            shapes.append(dict(name=f'mhs_4h-256-s{level}-{head}', op='routed', routes=routes,
                               **common))
        shapes.append(dict(name=f'mhs_4h-256-s{level}-cross', op='cross_scan', **common))
    return shapes


def make_inputs(shape: Dict, batch: int, device, dtype=torch.float32) -> Dict[str, torch.Tensor]:
    """Inputs with VMamba/Vim-like statistics (A = -exp(A_log), softplus'd deltas ~0.01-0.1),
    laid out as the backbones produce them: channels innermost (views, logical shapes as the
    API documents)."""
    gen = torch.Generator().manual_seed(0)

    def randn(*s, scale=1.0, shift=0.0):
        return (torch.randn(*s, generator=gen) * scale + shift).to(device=device, dtype=dtype)

    n = shape['d_state']
    if shape['op'] in ('cross_scan', 'routed'):
        k, dim, h, w = shape['directions'], shape['dim'], shape['height'], shape['width']
        # VMamba: u channels-last; delta (B, K, L, Di) and B/C (B, L, K, N) memory
        return dict(u=randn(batch, h, w, dim).permute(0, 3, 1, 2),
                    delta=randn(batch, k, h * w, dim, scale=0.5).transpose(2, 3)
                    .unflatten(3, (h, w)),
                    A=-torch.exp(randn(k * dim, n, scale=0.5)).float(),
                    B=randn(batch, h * w, k, n).permute(0, 2, 3, 1).unflatten(3, (h, w)),
                    C=randn(batch, h * w, k, n).permute(0, 2, 3, 1).unflatten(3, (h, w)),
                    D=randn(k * dim).float(), delta_bias=randn(k * dim, shift=-3.0).float())
    dim, length = shape['dim'], shape['length']
    if shape['op'] == 'selective':
        # Mamba: x, z and delta (B, D, L) from the conv / projections, B, C (B, N, L)
        return dict(u=randn(batch, dim, length), delta=randn(batch, dim, length, scale=0.5),
                    A=-torch.exp(randn(dim, n, scale=0.5)).float(), B=randn(batch, n, length),
                    C=randn(batch, n, length), D=randn(dim).float(), z=randn(batch, dim, length),
                    delta_bias=randn(dim, shift=-3.0).float())
    # Vim: (B, 2, L, Di) token memory for u and delta, (B, 2, L, N) for B/C, z (B, L, Di)
    return dict(u=randn(batch, 2, length, dim).transpose(2, 3),
                delta=randn(batch, 2, length, dim, scale=0.5).transpose(2, 3),
                A=-torch.exp(randn(2, dim, n, scale=0.5)).float(),
                B=randn(batch, 2, length, n).transpose(2, 3),
                C=randn(batch, 2, length, n).transpose(2, 3),
                D=randn(2, dim).float(), z=randn(batch, length, dim).transpose(1, 2),
                delta_bias=randn(2, dim, shift=-3.0).float())


def state_updates(shape: Dict, batch: int) -> int:
    """h_t = a_t h_{t-1} + b_t element updates of one call: batch x routes x Di x L x N."""
    if shape['op'] in ('cross_scan', 'routed'):
        return (batch * shape['directions'] * shape['dim'] * shape['height'] * shape['width']
                * shape['d_state'])
    if shape['op'] == 'selective':
        return batch * shape['dim'] * shape['length'] * shape['d_state']
    return batch * 2 * shape['dim'] * shape['length'] * shape['d_state']


def traffic(inputs: Dict[str, torch.Tensor], out_numel: int, out_bytes: int):
    """(forward bytes, forward+backward bytes) that must move at least."""
    ins = sum(t.numel() * t.element_size() for t in inputs.values())
    out = out_numel * out_bytes
    return ins + out, 3 * ins + 2 * out


# ------------------------------------------------------------------ runners
OP_FUNCTIONS = dict(selective='selective_scan', cross_scan='cross_scan_selective_scan',
                    bidirectional='bidirectional_selective_scan', routed='routed_selective_scan')


def ours(shape, backend, package=None):
    """Our op of this shape on ``backend``; ``package``: another checkout's mlla_kernels."""
    op = getattr(package or sys.modules[__package__], OP_FUNCTIONS[shape['op']])
    extra = {'cross_scan': dict(directions=shape.get('directions')),
             'routed': dict(routes=shape.get('routes'), merge=False)}.get(shape['op'], {})

    def run(t):
        return op(**t, delta_softplus=True, backend=backend, **extra)
    return run, lambda t: t


def load_checkout(path, name='mlla_kernels_before'):
    """Import the kernel package in folder ``path`` under ``name`` (beside ours)."""
    path = os.path.abspath(path)
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(path, '__init__.py'), submodule_search_locations=[path])
    if spec is None:
        raise SystemExit(f'--against {path}: no __init__.py there')
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _route_copies(t, shape):
    """Peer layout for a cross-scan: routes folded into the batch, (batch*K, ...) tensors."""
    from .cross_scan.naive import route_indices
    batch, dim, h, w = t['u'].shape
    k = shape['directions']
    routes = route_indices(h, w, k, t['u'].device)
    flat = t['u'].reshape(batch, dim, h * w)  # (copies of the channels-last views: untimed)
    u = torch.stack([flat[..., r] for r in routes], 1).reshape(batch * k, dim, h * w)
    delta = torch.stack([t['delta'][:, i].reshape(batch, dim, -1)[..., r]
                         for i, r in enumerate(routes)], 1).reshape(batch * k, dim, h * w)
    B = torch.stack([t['B'][:, i].reshape(batch, -1, h * w)[..., r]
                     for i, r in enumerate(routes)], 1).reshape(batch * k, -1, h * w)
    C = torch.stack([t['C'][:, i].reshape(batch, -1, h * w)[..., r]
                     for i, r in enumerate(routes)], 1).reshape(batch * k, -1, h * w)
    return u, delta, B, C


def mambapy_peer(shape):
    """mambapy's selective_scan (mamba.py) on its (batch, L, D) layout, per route/direction."""
    from mambapy.pscan import pscan

    def scan(u, delta, A, B, C, D, bias):   # u, delta (b, L, D); A (D, N); B, C (b, L, N)
        delta = F.softplus(delta + bias)
        deltaA = torch.exp(delta.unsqueeze(-1) * A)
        BX = (delta * u).unsqueeze(-1) * B.unsqueeze(2)
        hs = pscan(deltaA, BX)
        return (hs @ C.unsqueeze(-1)).squeeze(3) + D * u

    if shape['op'] == 'cross_scan':
        k = shape['directions']

        def prepare(t):
            batch, dim = t['u'].shape[:2]
            # (K, batch, L, channels): route i is a view, so no copy happens inside the timing
            lay = [x.reshape(batch, k, x.shape[1], -1).permute(1, 0, 3, 2).contiguous()
                   for x in _route_copies(t, shape)]
            return dict(u=lay[0], delta=lay[1], B=lay[2], C=lay[3], A=t['A'].view(k, dim, -1),
                        D=t['D'].view(k, dim), bias=t['delta_bias'].view(k, dim))

        def run(p):
            # one scan per route, each with its own parameters
            return torch.stack([scan(p['u'][i], p['delta'][i], p['A'][i], p['B'][i],
                                     p['C'][i], p['D'][i], p['bias'][i]) for i in range(k)])
        return run, prepare

    def prepare(t):
        def lay(x):
            return torch.stack([x[:, 0], x[:, 1].flip(-1)]).transpose(-1, -2).contiguous()
        return dict(u=lay(t['u']), delta=lay(t['delta']), B=lay(t['B']), C=lay(t['C']),
                    A=t['A'], D=t['D'], bias=t['delta_bias'],
                    z=t['z'].transpose(1, 2).contiguous())

    def run(p):
        yf, yb = (scan(p['u'][i], p['delta'][i], p['A'][i], p['B'][i], p['C'][i], p['D'][i],
                       p['bias'][i]) for i in range(2))
        return (yf + yb.flip(1)) * F.silu(p['z'])
    return run, prepare


def mamba_ssm_peer(shape):
    """mamba-ssm's CUDA selective_scan_fn on routed / flipped copies (made outside timing)."""
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

    if shape['op'] == 'cross_scan':
        k = shape['directions']

        def prepare(t):
            u, delta, B, C = _route_copies(t, shape)
            batch = t['u'].shape[0]
            # (batch*K, Di, L) -> (batch, K*Di, L): routes become channel blocks, B/C groups
            return dict(u=u.reshape(batch, -1, u.shape[-1]),
                        delta=delta.reshape(batch, -1, delta.shape[-1]),
                        B=B.view(batch, k, *B.shape[1:]), C=C.view(batch, k, *C.shape[1:]),
                        A=t['A'], D=t['D'], delta_bias=t['delta_bias'])

        def run(p):
            return selective_scan_fn(p['u'], p['delta'], p['A'], p['B'], p['C'], p['D'],
                                     delta_bias=p['delta_bias'], delta_softplus=True)
        return run, prepare

    def prepare(t):
        dim = t['u'].shape[2]
        def cat(x):
            return torch.cat([x[:, 0], x[:, 1].flip(-1)], 1)
        return dict(u=cat(t['u']), delta=cat(t['delta']),
                    B=torch.stack([t['B'][:, 0], t['B'][:, 1].flip(-1)], 1),
                    C=torch.stack([t['C'][:, 0], t['C'][:, 1].flip(-1)], 1),
                    A=t['A'].reshape(2 * dim, -1), D=t['D'].reshape(-1),
                    delta_bias=t['delta_bias'].reshape(-1), z=t['z'], dim=dim)

    def run(p):
        y = selective_scan_fn(p['u'], p['delta'], p['A'], p['B'], p['C'], p['D'],
                              delta_bias=p['delta_bias'], delta_softplus=True)
        dim = p['dim']
        return (y[:, :dim] + y[:, dim:].flip(-1)) * F.silu(p['z'])
    return run, prepare


# ------------------------------------------------------------------ timing
def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


_CLOCK = time.perf_counter


def time_call(fn, device, repeat):
    """Best-of-``repeat`` time after one warm-up (min is robust on a shared machine)."""
    fn()
    _sync(device)
    best = float('inf')
    for _ in range(repeat):
        start = _CLOCK()
        fn()
        _sync(device)
        best = min(best, _CLOCK() - start)
    return best


def _calls(run, prepare, inputs):
    """(forward without grad, forward+backward) of one runner as argument-free calls."""
    prepared = prepare(inputs)

    def fwd():
        with torch.no_grad():
            run(prepared)

    leaves = {k: (v.detach().clone().requires_grad_(True)
                  if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
              for k, v in prepared.items()}

    def fwd_bwd():
        for v in leaves.values():
            if isinstance(v, torch.Tensor):
                v.grad = None
        out = run(leaves)
        out.backward(torch.ones_like(out))
    return fwd, fwd_bwd


def measure(run, prepare, inputs, device, repeat, backward=True):
    """(forward, forward+backward) best-of-``repeat`` seconds of one runner."""
    fwd, fwd_bwd = _calls(run, prepare, inputs)
    return time_call(fwd, device, repeat), (time_call(fwd_bwd, device, repeat) if backward
                                            else None)


def measure_interleaved(runners, inputs, device, repeat):
    """name -> (forward, forward+backward) seconds, best of ``repeat`` rounds; each round times
    every runner once, so a change of load hits them all alike."""
    calls = {name: _calls(run, prepare, inputs) for name, (run, prepare) in runners.items()}
    best = {name: [float('inf'), float('inf')] for name in runners}
    for which in (0, 1):
        for name, pair in calls.items():       # warm-up (and compilation)
            pair[which]()
            _sync(device)
        for _ in range(repeat):
            for name, pair in calls.items():
                start = _CLOCK()
                pair[which]()
                _sync(device)
                best[name][which] = min(best[name][which], _CLOCK() - start)
    return {name: tuple(times) for name, times in best.items()}


def numba_compile_seconds():
    """First-call cost of the numba backend in fresh processes: (compile, load from disk cache).

    Compile: caching off, so the kernels (float32 forward + backward) are built from scratch;
    load: the default, after one run has written the cache. None where numba is unavailable.
    """
    import subprocess
    import sys
    from .dispatch import numba_status
    if not numba_status()[0]:
        return None
    code = 'from mlla_kernels.routed_scan import numba as nu; print(nu.warm_up())'
    seconds = []
    for cache in ('0', '1', '1'):     # compile; write the cache (if needed); load it
        env = dict(os.environ, MLLA_KERNELS_NUMBA_CACHE=cache)
        done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                              env=env, timeout=1800)
        if done.returncode:
            return None
        seconds.append(float(done.stdout.split()[-1]))
    return dict(compile_s=seconds[0], cached_load_s=seconds[2])


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo where there is one)."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def copy_bandwidth(device, megabytes=256):
    """Device copy bandwidth in GB/s (bytes read + written per second): the roofline."""
    n = megabytes * (1 << 20) // 4
    src = torch.empty(n, device=device).fill_(1.0)
    dst = torch.empty_like(src)
    seconds = time_call(lambda: dst.copy_(src), device, 5)
    return 2 * n * 4 / seconds / 1e9


# ------------------------------------------------------------------ driver
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--shapes', default=None,
                        help="comma-separated names or globs, e.g. 'vmamba_t-512-*,vim_ti-512' "
                             "(default: all on GPU, a representative subset on CPU); "
                             "'list' prints the names")
    parser.add_argument('--batch', default=None, help='comma-separated batch sizes '
                        '(default: 1,8 on GPU, 1 on CPU)')
    parser.add_argument('--repeat', type=int, default=3, help='timed runs per measurement')
    parser.add_argument('--backends', default=None,
                        help='comma-separated (default: every available one)')
    parser.add_argument('--no-peers', action='store_true', help='skip mambapy / mamba-ssm')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--clock', choices=('wall', 'cpu'), default='wall',
                        help="'cpu': process CPU time, for a CPU shared with other jobs "
                             '(meaningful with --threads 1; GPU timing always needs wall)')
    parser.add_argument('--json', default=DEFAULT_JSON, help='where to write the results '
                        f'(default {DEFAULT_JSON})')
    parser.add_argument('--against', default=None, metavar='DIR',
                        help="another checkout's kernel package folder: its backends run as "
                             "'before:<backend>', interleaved with ours")
    parser.add_argument('--no-compile-time', action='store_true',
                        help="skip measuring the numba backend's first-call compile time")
    parser.add_argument('--quick', action='store_true',
                        help=f'a small CPU-feasible subset: {", ".join(QUICK_SHAPES)}, batch 1')
    return parser.parse_args(argv)


def select_shapes(args, device):
    shapes = all_shapes()
    if args.shapes == 'list':
        print('\n'.join(s['name'] for s in shapes))
        raise SystemExit(0)
    if args.shapes:
        patterns, note = args.shapes.split(','), 'selected with --shapes'
    elif args.quick:
        patterns, note = QUICK_SHAPES, 'the --quick subset'
    elif device.type == 'cpu':
        patterns = CPU_DEFAULT_SHAPES
        note = ('all shapes' if CPU_DEFAULT_SHAPES == ['*'] else
                'the default CPU subset: ' + ', '.join(CPU_DEFAULT_SHAPES))
    else:
        patterns, note = ['*'], 'all shapes'
    chosen = [s for s in shapes if any(fnmatch.fnmatch(s['name'], p) for p in patterns)]
    if not chosen:
        raise SystemExit(f'no shape matches {patterns}; try --shapes list')
    return chosen, note


def peers_for(device):
    if device.type == 'cpu':
        try:
            import mambapy.pscan  # noqa: F401
            return {'mambapy': mambapy_peer}
        except ImportError:
            print('note: mambapy is not installed (pip install mambapy): no CPU peer')
            return {}
    try:
        import mamba_ssm.ops.selective_scan_interface  # noqa: F401
        return {'mamba_ssm': mamba_ssm_peer}
    except ImportError:
        print('note: mamba-ssm is not importable: the torch backend is the GPU peer')
        return {}


def main(argv=None):
    args = parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    shapes, note = select_shapes(args, device)
    batches = [int(b) for b in (args.batch or ('1' if device.type == 'cpu' or args.quick
                                               else '1,8')).split(',')]
    if args.backends:
        backends = args.backends.split(',')
    else:
        # naive is a Python loop over time steps (minutes at these sizes), and triton on CPU
        # is the interpreter (a correctness tool): both only when asked for
        backends = [b for b in available_backends(device) if b != 'naive'
                    and not (b == 'triton' and device.type == 'cpu')]
    global _CLOCK
    _CLOCK = time.process_time if args.clock == 'cpu' else time.perf_counter
    peers = {} if args.no_peers else peers_for(device)
    before = load_checkout(args.against) if args.against else None
    roofline = copy_bandwidth(device)
    if args.clock == 'cpu' and device.type == 'cuda':
        raise SystemExit('--clock cpu measures CPU time; use the wall clock on a GPU')
    env = dict(device=str(device), torch=torch.__version__, threads=torch.get_num_threads(),
               clock=args.clock,
               cpu=cpu_name(), roofline_gbs=roofline,
               shapes_note=note, load=os.getloadavg() if hasattr(os, 'getloadavg') else None)
    if device.type == 'cuda':
        env['gpu'] = torch.cuda.get_device_name(device)
    if device.type == 'cpu' and 'numba' in backends and not args.no_compile_time:
        env['numba_first_call'] = numba_compile_seconds()
        if env['numba_first_call']:
            print(f'# numba backend, first call in a fresh process: compile '
                  f'{env["numba_first_call"]["compile_s"]:.1f} s (once per machine), load '
                  f'from the disk cache {env["numba_first_call"]["cached_load_s"]:.1f} s')
    print(f'# scan benchmark on {env.get("gpu", env["cpu"])} ({device}, torch {torch.__version__}, '
          f'{env["threads"]} threads); shapes: {note}')
    print(f'# roofline (copy bandwidth): {roofline:.1f} GB/s; times are best of {args.repeat}')
    rows = []
    for shape in shapes:
        for batch in batches:
            inputs = make_inputs(shape, batch, device)
            if shape['op'] in ('bidirectional', 'selective'):
                out_numel = batch * shape['dim'] * shape['length']
            else:
                out_numel = batch * shape['dim'] * shape['height'] * shape['width']
                out_numel *= len(shape['routes']) if shape['op'] == 'routed' else 1
            fwd_bytes, fb_bytes = traffic(inputs, out_numel, 4)
            updates = state_updates(shape, batch)
            runners = {f'ours:{b}': ours(shape, b) for b in backends}
            if before is not None and hasattr(before, OP_FUNCTIONS[shape['op']]):
                runners.update({f'before:{b}': ours(shape, b, before) for b in backends
                                if b in before.available_backends(device)})
            if shape['op'] in ('cross_scan', 'bidirectional'):
                runners.update({name: make(shape) for name, make in peers.items()})
            times = measure_interleaved(runners, inputs, device, args.repeat)
            for name, (fwd, fb) in times.items():
                rows.append(dict(shape=shape['name'], op=shape['op'], batch=batch,
                                 count=shape['count'], impl=name, fwd_ms=fwd * 1e3,
                                 fwd_bwd_ms=fb * 1e3, updates=updates,
                                 fwd_ns_per_update=fwd * 1e9 / updates,
                                 fwd_bwd_ns_per_update=fb * 1e9 / updates,
                                 fwd_gbs=fwd_bytes / fwd / 1e9,
                                 fwd_bwd_gbs=fb_bytes / fb / 1e9,
                                 fwd_roofline=fwd_bytes / fwd / 1e9 / roofline,
                                 **{k: v for k, v in shape.items() if k not in ('name', 'op',
                                                                                'count')}))
                print(f'  {shape["name"]:<20} b={batch:<2} {name:<14} fwd {fwd * 1e3:9.2f} ms '
                      f'({fwd * 1e9 / updates:6.2f} ns/update)   fwd+bwd {fb * 1e3:9.2f} ms '
                      f'({fb * 1e9 / updates:6.2f} ns/update)', flush=True)
            del inputs
    table = markdown(rows, env, peers)
    print()
    print(table)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, 'w') as f:
        json.dump(dict(env=env, rows=rows, table=table), f, indent=1)
    print(f'\nwrote {args.json}')
    return rows


def markdown(rows, env, peers) -> str:
    """Per-shape and per-model tables; speedups of each backend against ours:torch and the peer."""
    lines = [f'Device: {env.get("gpu", env["cpu"])} ({env["device"]}), torch {env["torch"]}, '
             f'{env["threads"]} threads; roofline (copy bandwidth) {env["roofline_gbs"]:.1f} GB/s. '
             f'Shapes: {env["shapes_note"]}. '
             f'Times ({env["clock"]} clock): best of the repeats, ms; ns/upd = time per state '
             'update (batch x routes x Di x L x N per call); GB/s = bytes that must move / '
             'time; "×/fwd" = calls per model forward; speedups are of forward+backward; '
             '"vs before" = time of the --against checkout / ours, forward / forward+backward.'
             + (' numba first call in a fresh process: compile '
                f'{env["numba_first_call"]["compile_s"]:.1f} s, from the disk cache '
                f'{env["numba_first_call"]["cached_load_s"]:.1f} s.'
                if env.get('numba_first_call') else ''),
             '',
             '| shape | batch | ×/fwd | impl | fwd ms | fwd ns/upd | fwd GB/s | fwd % roof '
             '| fwd+bwd ms | fwd+bwd ns/upd | fwd+bwd GB/s | vs torch | vs peer | vs before |',
             '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|']
    peer_name = next(iter(peers), None)
    by_key = {(r['shape'], r['batch'], r['impl']): r for r in rows}

    def speedup(r, other):
        ref = by_key.get((r['shape'], r['batch'], other))
        if not ref or other == r['impl']:
            return ''
        return f'{ref["fwd_bwd_ms"] / r["fwd_bwd_ms"]:.2f}×'

    def vs_before(r):
        """before/ours time ratios, forward and forward+backward (> 1: we are faster)."""
        ref = by_key.get((r['shape'], r['batch'], r['impl'].replace('ours:', 'before:')))
        if not ref or not r['impl'].startswith('ours:'):
            return ''
        return (f'{ref["fwd_ms"] / r["fwd_ms"]:.2f}× / '
                f'{ref["fwd_bwd_ms"] / r["fwd_bwd_ms"]:.2f}×')

    for r in rows:
        lines.append(f'| {r["shape"]} | {r["batch"]} | {r["count"]} | {r["impl"]} | '
                     f'{r["fwd_ms"]:.2f} | {r["fwd_ns_per_update"]:.2f} | {r["fwd_gbs"]:.2f} | '
                     f'{100 * r["fwd_roofline"]:.1f} | {r["fwd_bwd_ms"]:.2f} | '
                     f'{r["fwd_bwd_ns_per_update"]:.2f} | {r["fwd_bwd_gbs"]:.2f} | '
                     f'{speedup(r, "ours:torch")} | '
                     f'{speedup(r, peer_name) if peer_name else ""} | {vs_before(r)} |')
    # per model and input: the scan time of one whole forward (+backward), sum of count x time
    totals: Dict = {}
    for r in rows:
        model = '-'.join(r['shape'].split('-')[:2])
        if r['shape'].endswith('-cross'):        # MHS-VM's sizes as merged raster cross-scans
            model += ' as cross-scans'
        key = (model, r['batch'], r['impl'])
        t = totals.setdefault(key, [0.0, 0.0, 0, set()])
        t[0] += r['count'] * r['fwd_ms']
        t[1] += r['count'] * r['fwd_bwd_ms']
        t[2] += r['count'] * r['updates']
        t[3].add(r['shape'])
    lines += ['', '| model-input (shapes run) | batch | impl | scan ms per model fwd | ns/upd '
              '| per model fwd+bwd | ns/upd | fwd+bwd vs torch | fwd+bwd vs peer |',
              '|---|---|---|---|---|---|---|---|---|']
    for (model, batch, impl), (f, fb, updates, names) in totals.items():
        def total_speedup(other):
            ref = totals.get((model, batch, other))
            return f'{ref[1] / fb:.2f}×' if ref and other != impl else ''
        lines.append(f'| {model} ({len(names)}) | {batch} | {impl} | {f:.1f} | '
                     f'{f * 1e6 / updates:.2f} | {fb:.1f} | {fb * 1e6 / updates:.2f} | '
                     f'{total_speedup("ours:torch")} | '
                     f'{total_speedup(peer_name) if peer_name else ""} |')
    return '\n'.join(lines)


if __name__ == '__main__':
    main()

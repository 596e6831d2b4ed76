"""Runtime self-check: the Triton kernels must agree with the ``torch`` backend on this GPU.

The Triton kernels are verified in CI under Triton's CPU interpreter only; a compiled kernel can
still be wrong on a GPU/driver/Triton version nobody has tried (e.g. triton-lang/triton #4362:
``associative_scan(reverse=True)`` is right in the interpreter and wrong on GPUs). So the first
time a kernel configuration is about to run on a GPU in a process, :func:`backend_for` runs the
same operation on a small generated problem of the same configuration through the ``triton`` and
the ``torch`` backends, forward and backward, and compares the output and every input gradient.

- Configuration = operation, device, the dtype of each input (and which optional inputs are
  given), state size N, routes K (cross-scan; for the routed scan the routes themselves,
  whether they are merged and whether each reads its own map u) and groups G (grouped B/C).
  Each is checked once per process; results are kept in memory (:func:`results`).
- A mismatch beyond :data:`TOLERANCE` (max abs error over the reference's max magnitude), a
  non-finite value or an exception from the Triton kernels fails the check: one
  :class:`KernelSelfCheckWarning` with the numbers, and from then on ``backend='auto'`` runs that
  operation in that dtype on that device with ``torch``. A backend named explicitly
  (``backend='triton'`` or ``MLLA_KERNELS_BACKEND=triton``: the request's origin, as
  :func:`mlla_kernels.dispatch.request` recorded it) is kept -- after the same warning -- so
  that tests and benchmarks of the kernels themselves still run them.
- ``MLLA_KERNELS_SELFCHECK=0`` turns the check off. It is skipped while a CUDA graph is being
  captured or torch.compile / torch.export traces (it would break either); the next eager call
  runs it.
- The problem is generated with a private generator: the global (CPU and CUDA) random states
  are untouched, so seeded runs stay reproducible. Cost: one small forward+backward per backend
  per configuration (milliseconds once the kernels are compiled; compiling is shared with the
  real call only when the constexpr specialisation coincides).

``python -m mlla_kernels.selfcheck --device cuda`` runs the checks of the configurations our
backbones use, in float32, bfloat16 and float16, and prints a table (``--json`` to save it).
"""
import argparse
import json
import os
import sys
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Tuple

import torch

from .dispatch import OPERATIONS, get_impl
from .route_tables import as_routes

ENV_VAR = 'MLLA_KERNELS_SELFCHECK'

#: allowed max abs error / max |reference|, by the dtype of u. Two fp32-state implementations
#: differ by rounding only (~1e-6 in fp32, one output ulp in half precision); a broken kernel
#: is off by O(1).
TOLERANCE = {torch.float32: 2e-3, torch.float16: 2e-2, torch.bfloat16: 5e-2}

#: sizes of the generated problem: several 64-step chunks (the GPU chunk) and a partial one,
#: a non-square odd map; tests shrink it (the interpreter is slow)
PROBLEM = dict(batch=2, channels=8, length=150, height=10, width=15)

PARAMETERS = ('A', 'D', 'delta_bias')


class KernelSelfCheckWarning(RuntimeWarning):
    """The Triton kernels disagreed with the torch backend on this device."""


@dataclass
class CheckResult:
    op: str
    device: str
    device_name: str
    dtypes: Dict[str, str]
    n_state: int
    structure: Dict[str, object]
    ok: bool
    tolerance: float
    worst: str = ''                      # the output/gradient with the largest relative error
    max_abs_err: float = 0.0
    max_rel_err: float = 0.0
    errors: Dict[str, Tuple[float, float]] = field(default_factory=dict)   # name: (abs, rel)
    exception: Optional[str] = None
    seconds: float = 0.0

    def summary(self) -> str:
        dtypes = ', '.join(f'{k}={v}' for k, v in self.dtypes.items())
        head = (f'{self.op} on {self.device_name} ({self.device}), N={self.n_state}'
                + ''.join(f', {k}={v}' for k, v in self.structure.items()) + f' [{dtypes}]')
        if self.exception:
            return f'{head}: the Triton kernels raised {self.exception}'
        return (f'{head}: worst {self.worst}: max abs err {self.max_abs_err:.3g}, max rel err '
                f'{self.max_rel_err:.3g} (tolerance {self.tolerance:g})')


_lock = threading.RLock()
_checked: Dict[tuple, CheckResult] = {}     # configuration -> result
_failed: Dict[tuple, CheckResult] = {}      # (op, device, dtype of u) -> first failure
_warned = set()                             # (op, device, dtype of u), automatic


def enabled() -> bool:
    return os.environ.get(ENV_VAR, '1').strip().lower() not in ('0', 'false', 'no', 'off')


def applies(device: torch.device) -> bool:
    """Whether calls on ``device`` are checked (compiled kernels run only on CUDA)."""
    return device.type == 'cuda'


def results() -> List[CheckResult]:
    """Every check run in this process, in order."""
    with _lock:
        return list(_checked.values())


def reset():
    """Forget all results (tests)."""
    with _lock:
        _checked.clear()
        _failed.clear()
        _warned.clear()


def _busy(u: Optional[torch.Tensor] = None) -> bool:
    """A CUDA graph capture or a torch.compile / torch.export trace (u a fake tensor) is under
    way."""
    if u is not None and torch._subclasses.fake_tensor.is_fake(u):
        return True
    if torch.cuda.is_available() and torch.cuda.is_current_stream_capturing():
        return True
    compiler = getattr(torch, 'compiler', None)
    return bool(compiler is not None and getattr(compiler, 'is_compiling', lambda: False)())


def _structure(op: str, sizes: Dict[str, int], args: Dict) -> Dict[str, object]:
    """What beyond dtypes and N makes a configuration: routes K, groups G; for the routed
    scan the routes (as text) and whether they are merged."""
    structure = {k: sizes[k] for k in ('K', 'G') if k in sizes}
    if op == 'routed_selective_scan':
        structure['routes'] = ','.join(map(str, args['routes']))
        structure['merge'] = bool(args['merge'])
        structure['u_per_route'] = args['u'].dim() == 5
    return structure


def backend_for(op: str, origin: str, tensors: Dict[str, torch.Tensor],
                sizes: Dict[str, int], args: Optional[Dict] = None) -> str:
    """The backend to run instead of 'triton' for this call: 'triton' or 'torch'.

    Called by the entry points when a call resolved to 'triton'; ``origin`` is where that came
    from ('auto', 'environment' or 'caller'), ``tensors``/``sizes`` the checked arguments,
    ``args`` the call's other arguments (the routes of a routed scan).
    """
    u = tensors['u']
    if not enabled() or not applies(u.device):
        return 'triton'
    fallback_key = (op, str(u.device), u.dtype)
    structure = _structure(op, sizes, args or {})
    dtypes = {name: t.dtype for name, t in tensors.items()}
    key = (op, str(u.device), sizes['N'], tuple(sorted(structure.items())),
           tuple(dtypes.items()))
    with _lock:
        if key not in _checked:
            if _busy(u):
                return 'torch' if fallback_key in _failed and origin == 'auto' else 'triton'
            result = check(op, u.device, dtypes, sizes['N'], structure)
            _checked[key] = result
            if not result.ok:
                _failed.setdefault(fallback_key, result)
        failure = _failed.get(fallback_key)
        automatic = origin == 'auto'
        if failure is not None and (fallback_key, automatic) not in _warned:
            _warned.add((fallback_key, automatic))     # once per failure and kind of request
            _warn(failure, automatic)
        if failure is not None and automatic:
            return 'torch'
    return 'triton'


def _warn(result: CheckResult, automatic: bool):
    if automatic:
        action = (f"backend='auto' now runs {result.op} in {result.dtypes['u']} on this device "
                  "with the 'torch' backend (correct, slower)")
    else:
        action = "the triton backend was requested explicitly and is kept"
    others = ', '.join(f'{name} {abs_err:.2g}/{rel:.2g}'
                       for name, (abs_err, rel) in result.errors.items())
    warnings.warn(
        f'mlla_kernels self-check FAILED: the Triton kernels disagree with the torch backend: '
        f'{result.summary()}' + (f'; abs/rel errors: {others}' if others else '')
        + f'. {action}. Please report this (GPU, driver, torch and triton versions); '
        f'{ENV_VAR}=0 turns the check off.', KernelSelfCheckWarning, stacklevel=5)


def make_problem(op: str, device, dtypes: Dict[str, torch.dtype], n_state: int,
                 structure: Dict[str, object], seed: int = 0):
    """Arguments and keyword arguments of a small problem of this configuration."""
    gen = torch.Generator().manual_seed(seed)
    p = PROBLEM
    batch, length, n = p['batch'], p['length'], n_state

    def randn(*shape, scale=1.0, shift=0.0):
        return torch.randn(*shape, generator=gen) * scale + shift

    def delta(*shape):    # raw deltas: softplus(-1 +- 0.5) ~ 0.2 .. 0.5
        return randn(*shape, scale=0.5, shift=-1.0)

    def A(*shape):
        return -torch.exp(randn(*shape, scale=0.5))

    if op == 'selective_scan':
        groups = structure.get('G')
        dim = 4 * groups if groups else p['channels']
        bc = (batch, groups, n, length) if groups else (batch, n, length)
        t = dict(u=randn(batch, dim, length), delta=delta(batch, dim, length), A=A(dim, n),
                 B=randn(*bc), C=randn(*bc), D=randn(dim), z=randn(batch, dim, length),
                 delta_bias=randn(dim, scale=0.5))
        kwargs = dict(delta_softplus=True, return_last_state=True)
    elif op == 'cross_scan_selective_scan':
        k, dim, h, w = structure['K'], p['channels'], p['height'], p['width']
        t = dict(u=randn(batch, dim, h, w), delta=delta(batch, k, dim, h, w), A=A(k * dim, n),
                 B=randn(batch, k, n, h, w), C=randn(batch, k, n, h, w), D=randn(k * dim),
                 delta_bias=randn(k * dim, scale=0.5))
        kwargs = dict(delta_softplus=True, directions=k)
    elif op == 'routed_selective_scan':
        routes = as_routes(structure['routes'].split(','))
        k, dim, h, w = len(routes), p['channels'], p['height'], p['width']
        u_shape = (batch, k, dim, h, w) if structure.get('u_per_route') else (batch, dim, h, w)
        t = dict(u=randn(*u_shape), delta=delta(batch, k, dim, h, w), A=A(k * dim, n),
                 B=randn(batch, k, n, h, w), C=randn(batch, k, n, h, w), D=randn(k * dim),
                 delta_bias=randn(k * dim, scale=0.5))
        kwargs = dict(delta_softplus=True, routes=routes, merge=structure['merge'])
    elif op == 'bidirectional_selective_scan':
        dim = p['channels']
        t = dict(u=randn(batch, 2, dim, length), delta=delta(batch, 2, dim, length),
                 A=A(2, dim, n), B=randn(batch, 2, n, length), C=randn(batch, 2, n, length),
                 D=randn(2, dim), z=randn(batch, dim, length), delta_bias=randn(2, dim, scale=0.5))
        kwargs = dict(delta_softplus=True)
    else:
        raise ValueError(f'self-check: unknown operation {op!r}; one of {", ".join(OPERATIONS)}')
    # the call's optional inputs only, each in the call's dtype
    args = {name: (t[name].to(device=device, dtype=dtypes[name]) if name in dtypes else None)
            for name in t}
    return args, kwargs


def check(op: str, device, dtypes: Dict[str, torch.dtype], n_state: int,
          structure: Dict[str, object]) -> CheckResult:
    """Run ``op`` through 'triton' and 'torch' on a small problem; compare y and all gradients."""
    device = torch.device(device)
    start = time.perf_counter()
    name = (torch.cuda.get_device_name(device) if device.type == 'cuda'
            else f'{device.type} (simulated)')
    tolerance = TOLERANCE.get(dtypes['u'], TOLERANCE[torch.float32])
    result = CheckResult(op=op, device=str(device), device_name=name,
                         dtypes={k: str(v).replace('torch.', '') for k, v in dtypes.items()},
                         n_state=n_state, structure=dict(structure), ok=True,
                         tolerance=tolerance)
    with torch.inference_mode(False), torch.enable_grad(), \
            torch.autocast(device.type, enabled=False):
        args, kwargs = make_problem(op, device, dtypes, n_state, structure)
        weights = None
        grads = {}
        for backend in ('torch', 'triton'):
            leaves = {k: (None if v is None else v.detach().clone().requires_grad_(True))
                      for k, v in args.items()}
            try:
                outs = get_impl(op, backend)(**leaves, **kwargs)
                outs = outs if isinstance(outs, tuple) else (outs,)
                if weights is None:
                    gen = torch.Generator().manual_seed(1)
                    weights = [torch.randn(o.shape, generator=gen).to(o.device) for o in outs]
                loss = sum((o.float() * w).sum() for o, w in zip(outs, weights))
                loss.backward()
                if device.type == 'cuda':
                    torch.cuda.synchronize(device)
            except Exception as err:  # noqa: BLE001 -- a kernel that cannot run fails the check
                if backend == 'torch':
                    raise
                result.ok = False
                result.exception = f'{type(err).__name__}: {str(err)[:300]}'
                result.seconds = time.perf_counter() - start
                return result
            names = ['y', 'last_state'][:len(outs)]
            grads[backend] = dict(zip(names, (o.detach() for o in outs)))
            grads[backend].update({f'grad {k}': v.grad for k, v in leaves.items()
                                   if v is not None})
    for key, ref in grads['torch'].items():
        ours = grads['triton'].get(key)
        diff = None if ours is None else ours.double() - ref.double()
        if diff is None or not torch.isfinite(diff).all():
            abs_err = rel = float('inf')
        else:
            abs_err = diff.abs().max().item()
            rel = abs_err / max(ref.double().abs().max().item(), 1e-6)
        result.errors[key] = (abs_err, rel)
        if rel >= result.max_rel_err:
            result.worst, result.max_abs_err, result.max_rel_err = key, abs_err, rel
    result.ok = result.max_rel_err <= tolerance
    result.seconds = time.perf_counter() - start
    return result


# the configurations our backbones run: VMamba v2 (N=1) and v0/v1 (N=16) cross-scans,
# Vim's bidirectional scan, a plain scan with every option, MHS-VM's four heads in one call
# (16 routes over per-route maps, apart)
STANDARD = [
    ('selective_scan', 16, {}, ('u', 'delta', 'A', 'B', 'C', 'D', 'z', 'delta_bias')),
    ('cross_scan_selective_scan', 1, {'K': 4}, ('u', 'delta', 'A', 'B', 'C', 'D', 'delta_bias')),
    ('cross_scan_selective_scan', 16, {'K': 4}, ('u', 'delta', 'A', 'B', 'C', 'D', 'delta_bias')),
    ('bidirectional_selective_scan', 16, {},
     ('u', 'delta', 'A', 'B', 'C', 'D', 'z', 'delta_bias')),
    ('routed_selective_scan', 16,
     {'K': 16, 'merge': False, 'u_per_route': True,
      'routes': 'snake_row,snake_row~,snake_col,snake_col~,zigzag,zigzag~,zigzag_mirror,'
                'zigzag_mirror~,spiral,spiral~,spiral_flip,spiral_flip~,row,row~,col,col~'},
     ('u', 'delta', 'A', 'B', 'C', 'D', 'delta_bias')),
]


def check_standard(device='cuda', dtypes=(torch.float32, torch.bfloat16, torch.float16)):
    """Check every :data:`STANDARD` configuration in each dtype (parameters A, D, delta_bias
    stay float32, as under autocast); returns the results."""
    out = []
    for dtype in dtypes:
        for op, n_state, structure, names in STANDARD:
            types = {k: (torch.float32 if k in PARAMETERS else dtype) for k in names}
            out.append(check(op, device, types, n_state, structure))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cuda')
    parser.add_argument('--dtypes', default='float32,bfloat16,float16')
    parser.add_argument('--json', default=None, help='write the results here')
    args = parser.parse_args(argv)
    dtypes = [getattr(torch, d) for d in args.dtypes.split(',')]
    rows = check_standard(args.device, dtypes)
    print('| operation | N | structure | u dtype | ok | worst | max abs err | max rel err '
          '| tolerance | s |')
    print('|---|---|---|---|---|---|---|---|---|---|')
    for r in rows:
        worst = r.exception or r.worst
        print(f'| {r.op} | {r.n_state} | {r.structure or ""} | {r.dtypes["u"]} | '
              f'{"yes" if r.ok else "**NO**"} | {worst} | {r.max_abs_err:.2e} | '
              f'{r.max_rel_err:.2e} | {r.tolerance:g} | {r.seconds:.1f} |')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump([asdict(r) for r in rows], f, indent=1)
    failed = [r for r in rows if not r.ok]
    print(f'\n{len(rows) - len(failed)}/{len(rows)} configurations agree with the torch backend'
          + (f' on {rows[0].device_name}' if rows else ''))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())

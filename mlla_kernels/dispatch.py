"""Operations, the choice of a backend for a call, and the one check of a call's arguments.

The backend table (:data:`BACKENDS_TABLE`, one :class:`Backend` row per backend) lives in
:mod:`mlla_kernels.backends` and is re-exported here. The code of backend ``name`` for
operation ``op`` is the function ``<op>_<name>`` of the module
``mlla_kernels.<op's folder>.<name>``; where there is none and the row names an *engine* (a
module with a ``routed_scan`` function, :mod:`mlla_kernels.routes`), the operation runs on the
engine through its route mapping and the operator ``mlla_kernels::routed_scan``
(:func:`get_impl`). Everything is imported on first use, so ``import mlla_kernels`` needs
torch alone and numba / triton are touched only when their backend is chosen or asked about.
Adding a backend: its module(s) and one row in the table (see docs/contributing.md).

:data:`OPERATIONS` names each operation once (its public function's name) with the shapes of
its arguments; :func:`validate` checks a call against them -- for every backend, once.
"""
import importlib
import importlib.util
import inspect
import os
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch

from . import openmp, routes
from .backends import (  # noqa: F401  (re-exported: callers name them as dispatch.*)
    ALL_FLOATS, BACKENDS, BACKENDS_TABLE, ENV_VAR, HALF_AND_SINGLE, KERNEL_BACKENDS, TABLE,
    Backend, _dtype_names, auto_backend, available_backends, numba_status, triton_interpret,
    triton_status)


class Request(NamedTuple):
    """The backend a call asked for and where that came from: 'caller' (the ``backend``
    argument), 'environment' (:data:`ENV_VAR`) or 'auto'."""
    name: str          # a backend name, or 'auto'
    origin: str


def request(backend: str) -> Request:
    """Read the ``backend`` argument and, for 'auto', the environment override (once)."""
    if backend != 'auto':
        origin, where = 'caller', 'backend'
    else:
        backend = os.environ.get(ENV_VAR, 'auto').strip().lower() or 'auto'
        origin, where = ('auto', '') if backend == 'auto' else (
            'environment', f'environment variable {ENV_VAR}')
    if backend != 'auto' and backend not in TABLE:
        raise ValueError(f"{where} must be one of 'auto', {', '.join(map(repr, BACKENDS))}; "
                         f'got {backend!r}')
    return Request(backend, origin)


def resolve_backend(backend: str, device: torch.device,
                    dtype: Optional[torch.dtype] = None) -> str:
    """A concrete backend for ``backend`` (a name, or 'auto': :func:`auto_backend`), checked to
    be importable and to run on ``device``."""
    if backend == 'auto':
        return auto_backend(device, dtype)
    if backend not in TABLE:
        raise ValueError(f"backend must be one of 'auto', {', '.join(map(repr, BACKENDS))}; "
                         f'got {backend!r}')
    row = TABLE[backend]
    ok, reason = row.status()
    if not ok:
        raise RuntimeError(f"backend={backend!r} is unavailable: {reason}. "
                           "Use backend='torch' (or 'auto').")
    error = row.device_error(device)
    if error:
        raise RuntimeError(error)
    return backend


# ----------------------------------------------------------------------------------------
# Operations and their arguments
# ----------------------------------------------------------------------------------------

def _fmt(shape) -> str:
    """Python tuple notation: (batch, D, L), (D,)."""
    inner = ', '.join(str(s) for s in shape)
    return f'({inner},)' if len(shape) == 1 else f'({inner})'


class Checker:
    """Validates the tensors of one call: shapes against symbols, one device, allowed dtypes."""

    def __init__(self, op: str):
        self.op = op
        self.sizes: Dict[str, int] = {}
        self.tensors: List[Tuple[str, torch.Tensor]] = []

    def _concrete(self, dims) -> str:
        """dims with the sizes known so far filled in: (4, N) for (D, N) with D=4."""
        return _fmt([self.sizes.get(s, s) if isinstance(s, str) else s for s in dims])

    def _shape_error(self, name, tensor, dims, known=''):
        expected, concrete = _fmt(dims), self._concrete(dims)
        here = f' -- here {name} must be {concrete}' if concrete != expected else ''
        return ValueError(f'{self.op}: {name} must have shape {expected}{known}; '
                          f'got {_fmt(tensor.shape)}{here}')

    def shape(self, name: str, tensor: Optional[torch.Tensor], dims: Sequence,
              optional: bool = False):
        """Check ``tensor`` has the symbolic shape ``dims`` (e.g. ('batch', 'D', 'L'))."""
        if tensor is None:
            if optional:
                return
            raise ValueError(f'{self.op}: {name} is required, with shape {_fmt(dims)}')
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f'{self.op}: {name} must be a torch.Tensor of shape {_fmt(dims)}; '
                            f'got {type(tensor).__name__}')
        if tensor.dim() != len(dims):
            raise self._shape_error(name, tensor, dims)
        for sym, size in zip(dims, tensor.shape):
            if isinstance(sym, int):
                if size != sym:
                    raise self._shape_error(name, tensor, dims)
            elif sym in self.sizes and self.sizes[sym] != size:
                raise self._shape_error(name, tensor, dims, f' with {sym}={self.sizes[sym]} '
                                        '(from the arguments before it)')
            else:
                self.sizes.setdefault(sym, size)
        self.tensors.append((name, tensor))

    def device(self) -> torch.device:
        """The one device all tensors share (checked)."""
        first_name, first = self.tensors[0]
        for name, t in self.tensors[1:]:
            if t.device != first.device:
                raise ValueError(f'{self.op}: all tensors must be on one device; {first_name} is '
                                 f'on {first.device} but {name} is on {t.device}')
        return first.device

    def dtypes(self, backend: str):
        allowed = TABLE[backend].dtypes
        for name, t in self.tensors:
            if t.dtype not in allowed:
                raise TypeError(f"{self.op}: {name} has dtype {str(t.dtype).replace('torch.', '')}"
                                f"; backend '{backend}' supports {_dtype_names(allowed)}")

    def positive(self, *symbols: str):
        for sym in symbols:
            if self.sizes.get(sym, 1) < 1:
                raise ValueError(f'{self.op}: {sym} must be at least 1; got {self.sizes[sym]} '
                                 '(empty inputs are not supported)')


def _check_selective_scan(check, u, delta, A, B, C, D=None, z=None, delta_bias=None, **_):
    check.shape('u', u, ('batch', 'D', 'L'))
    check.shape('delta', delta, ('batch', 'D', 'L'))
    check.shape('A', A, ('D', 'N'))
    grouped = isinstance(B, torch.Tensor) and B.dim() == 4
    bc_dims = ('batch', 'G', 'N', 'L') if grouped else ('batch', 'N', 'L')
    check.shape('B', B, bc_dims)
    check.shape('C', C, bc_dims)
    check.shape('D', D, ('D',), optional=True)
    check.shape('z', z, ('batch', 'D', 'L'), optional=True)
    check.shape('delta_bias', delta_bias, ('D',), optional=True)
    check.positive('batch', 'D', 'L', 'N', 'G')
    if grouped and check.sizes['D'] % check.sizes['G']:
        raise ValueError(f"{check.op}: the channel count D={check.sizes['D']} must be a "
                         'multiple of the number of groups of B/C (batch, G, N, L), i.e. a '
                         f"multiple of the group count G={check.sizes['G']}")


def _check_map_scan(check, u, delta, A, B, C, D=None, delta_bias=None, n_routes=4,
                    u_per_route=False):
    check.sizes['K'] = n_routes
    u_dims = ('batch', 'K', 'Di', 'H', 'W') if u_per_route else ('batch', 'Di', 'H', 'W')
    check.shape('u', u, u_dims)
    check.shape('delta', delta, ('batch', 'K', 'Di', 'H', 'W'))
    check.sizes['K*Di'] = n_routes * check.sizes['Di']
    check.shape('A', A, ('K*Di', 'N'))
    check.shape('B', B, ('batch', 'K', 'N', 'H', 'W'))
    check.shape('C', C, ('batch', 'K', 'N', 'H', 'W'))
    check.shape('D', D, ('K*Di',), optional=True)
    check.shape('delta_bias', delta_bias, ('K*Di',), optional=True)
    check.positive('batch', 'Di', 'H', 'W', 'N')


def _check_cross_scan(check, u, delta, A, B, C, D=None, delta_bias=None, directions=4, **_):
    if directions not in (1, 2, 4):
        raise ValueError(f'{check.op}: directions must be 1, 2 or 4; got {directions!r} '
                         "(directions must be one of CROSS_SCAN_ROUTES' keys; "
                         'routed_selective_scan takes any routes)')
    _check_map_scan(check, u, delta, A, B, C, D, delta_bias, directions)


def _check_routed_scan(check, u, delta, A, B, C, D=None, delta_bias=None, routes=(), **_):
    # u is the one map all routes read, or (5 dims) one map per route
    _check_map_scan(check, u, delta, A, B, C, D, delta_bias, len(routes),
                    u_per_route=isinstance(u, torch.Tensor) and u.dim() == 5)


def _check_bidirectional(check, u, delta, A, B, C, D=None, z=None, delta_bias=None, **_):
    check.shape('u', u, ('batch', 2, 'Di', 'L'))
    check.shape('delta', delta, ('batch', 2, 'Di', 'L'))
    check.shape('A', A, (2, 'Di', 'N'))
    check.shape('B', B, ('batch', 2, 'N', 'L'))
    check.shape('C', C, ('batch', 2, 'N', 'L'))
    check.shape('D', D, (2, 'Di'), optional=True)
    check.shape('z', z, ('batch', 'Di', 'L'), optional=True)
    check.shape('delta_bias', delta_bias, (2, 'Di'), optional=True)
    check.positive('batch', 'Di', 'L', 'N')


def _check_depthwise_conv(check, x, weight, bias=None, padding=None, activation=None,
                          residual=False, **_):
    from .depthwise_conv import check_options
    check.shape('x', x, ('batch', 'H', 'W', 'C'))
    several = isinstance(weight, torch.Tensor) and weight.dim() == 4
    check.shape('weight', weight, ('K', 'C', 'kh', 'kw') if several else ('C', 'kh', 'kw'))
    check.shape('bias', bias, ('K', 'C') if several else ('C',), optional=True)
    check.positive('batch', 'H', 'W', 'C', 'K', 'kh', 'kw')
    check_options(check.op, check.sizes.get('K', 1), check.sizes['kh'], check.sizes['kw'],
                  padding, activation, residual)


def _check_linear_attention(check, qk, v, rope_cos, rope_sin, num_heads, lepe_weight=None,
                            lepe_bias=None, gate=None, **_):
    check.shape('v', v, ('batch', 'H', 'W', 'C'))
    check.positive('batch', 'H', 'W', 'C')
    sizes = check.sizes
    sizes['2C'], sizes['H*W'], sizes['C/2'] = 2 * sizes['C'], sizes['H'] * sizes['W'], \
        sizes['C'] // 2
    check.shape('qk', qk, ('batch', 'H', 'W', '2C'))
    check.shape('rope_cos', rope_cos, ('H*W', 'C/2'))
    check.shape('rope_sin', rope_sin, ('H*W', 'C/2'))
    check.shape('lepe_weight', lepe_weight, ('C', 'kh', 'kw'), optional=True)
    check.shape('lepe_bias', lepe_bias, ('C',), optional=True)
    check.shape('gate', gate, ('batch', 'H', 'W', 'C'), optional=True)
    if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads < 1 or \
            sizes['C'] % num_heads or (sizes['C'] // num_heads) % 2:
        raise ValueError(f"{check.op}: num_heads must be a positive int dividing the {sizes['C']}"
                         ' channels into heads of an even width (RoPE rotates channel pairs); '
                         f'got {num_heads!r}')
    if lepe_weight is not None and (sizes['kh'] % 2 == 0 or sizes['kw'] % 2 == 0):
        raise ValueError(f"{check.op}: lepe_weight (C, kh, kw) must have odd kh and kw (a "
                         f"centred kernel); got {sizes['kh']}x{sizes['kw']}")
    if lepe_bias is not None and lepe_weight is None:
        raise ValueError(f'{check.op}: lepe_bias is given without lepe_weight')


class Operation(NamedTuple):
    """One operation: its name (the public function's), its folder, its argument check, and
    the backends that implement it (None: every backend, through the engines); a backend
    chosen for an operation it does not implement runs ``torch`` instead."""
    name: str
    folder: str
    check: Callable
    backends: Optional[Tuple[str, ...]] = None


OPERATIONS: Dict[str, Operation] = {op.name: op for op in (
    Operation('selective_scan', 'selective_scan', _check_selective_scan),
    Operation('cross_scan_selective_scan', 'cross_scan', _check_cross_scan),
    Operation('bidirectional_selective_scan', 'bidirectional', _check_bidirectional),
    Operation('routed_selective_scan', 'routed_scan', _check_routed_scan),
    Operation('depthwise_conv2d', 'depthwise_conv', _check_depthwise_conv,
              backends=('naive', 'torch', 'numba')),
    Operation('linear_attention', 'linear_attention', _check_linear_attention,
              backends=('naive', 'torch', 'numba')),
)}


def backend_for(op: str, backend: str) -> str:
    """``backend`` if it implements ``op``, else ``torch`` (e.g. triton for the depthwise
    convolution: PyTorch's own convolution is what runs on a GPU). Under ``torch.jit`` tracing
    or ``torch.compile`` these operations run ``torch`` too: their fused CPU kernels work on
    numpy views, which a traced graph (FLOP counting, export) cannot record."""
    implemented = OPERATIONS[op].backends
    if implemented is None:
        return backend
    if backend not in implemented or torch.jit.is_tracing() or _compiling():
        return 'torch'
    return backend


def _compiling() -> bool:
    compiler = getattr(torch, 'compiler', None)
    return bool(compiler is not None and hasattr(compiler, 'is_compiling')
                and compiler.is_compiling())


def validate(op: str, args: Dict) -> Checker:
    """Check a call's arguments (shapes, one device); the returned Checker holds the sizes
    (``sizes``) and the named tensors (``tensors``, u first)."""
    check = Checker(op)
    OPERATIONS[op].check(check, **args)
    check.device()
    return check


def get_impl(op: str, backend: str):
    """The implementation of operation ``op`` on a concrete backend (imported lazily): the
    function ``<op>_<backend>`` of ``mlla_kernels.<op's folder>.<backend>`` if there is one,
    else the operation mapped onto the backend's engine (:func:`mlla_kernels.routes.bind`)."""
    if backend == 'numba':
        openmp.warn_if_spinning()   # once: its threads would share cores with spinning ones
    module = _op_module(op, backend)
    fn = None if module is None else getattr(module, f'{op}_{backend}', None)
    if fn is None:
        engine = TABLE[backend].engine
        if engine is None:
            raise ImportError(f'backend {backend!r} has no {op}_{backend} in '
                              f'mlla_kernels.{OPERATIONS[op].folder}.{backend} and no engine '
                              'in its table row')
        return _bound(op, backend, engine)
    return getattr(fn, 'unchecked', fn)   # looked up per call: tests patch module attributes


_MODULES: Dict[Tuple[str, str], object] = {}
_BOUND: Dict[Tuple[str, str], Callable] = {}


def _op_module(op: str, backend: str):
    """The module ``<op's folder>.<backend>``, or None where there is none (looked up once)."""
    if (op, backend) not in _MODULES:
        name = f'.{OPERATIONS[op].folder}.{backend}'
        found = importlib.util.find_spec(name, __package__) is not None
        _MODULES[op, backend] = importlib.import_module(name, __package__) if found else None
    return _MODULES[op, backend]


def _bound(op: str, backend: str, engine: str) -> Callable:
    """``op`` on the operator ``mlla_kernels::routed_scan`` with this backend's engine."""
    if (op, backend) not in _BOUND:
        from . import library
        _BOUND[op, backend] = routes.bind(op, library.engine(backend), backend)
    return _BOUND[op, backend]


def checked(op: str, backend: str):
    """Decorator for a backend's function of ``op`` that may also be called directly (not
    through the public entry point, which validates): such calls are validated the same way.
    :func:`get_impl` hands the undecorated function (``.unchecked``) to the entry points."""
    def decorate(fn):
        signature = inspect.signature(fn)

        def direct(*args, **kwargs):
            check = validate(op, dict(signature.bind(*args, **kwargs).arguments))
            check.dtypes(backend)
            error = TABLE[backend].device_error(check.device())
            if error:
                raise RuntimeError(error)
            return fn(*args, **kwargs)
        direct.__name__, direct.__qualname__, direct.__doc__ = fn.__name__, fn.__qualname__, \
            fn.__doc__
        direct.__module__ = fn.__module__
        direct.unchecked = fn
        return direct
    return decorate

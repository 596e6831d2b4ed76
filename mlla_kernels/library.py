"""The scans as PyTorch operators: ``torch.ops.mlla_kernels.*``.

Every scan runs on one routed scan (:mod:`mlla_kernels.routes`), so the engines (numba on
CPU, Triton on CUDA) sit behind two registered operators, with a fake implementation (shapes,
dtypes and strides without running: FakeTensor, meta tensors, ``torch.compile``,
``torch.export``) and the autograd formula registered, so that ``torch.compile(fullgraph=True)``
and ``torch.export`` see one node per scan instead of an opaque Python call:

- ``mlla_kernels::routed_scan(u, delta, A, B, C, D?, z?, delta_bias?, routes, delta_softplus,
  merge, backend, save) -> (y, last_state, saved)`` -- the forward. Tensors are *maps*: u
  (batch, Ku, DIM, H, W) with Ku 1 (shared by the routes) or K, delta (batch, K, DIM, H, W),
  A (K, DIM, N), B, C (batch, K, G, N, H, W), D, delta_bias (K, DIM), z (batch, DIM, H, W);
  ``routes`` names the K routes of the H x W map, comma-separated (``'row,col,row~,col~'``;
  :mod:`mlla_kernels.route_tables`), so the route tables are built inside, from the map's
  size -- which keeps H and W symbolic under dynamic shapes. y is (batch, DIM, H, W) merged,
  else (batch, K, DIM, H, W); last_state (batch, K, DIM, N) in the compute dtype; ``saved``
  is what the engine keeps for the backward (its chunk states), returned as outputs so the
  backward can be an operator of its own. ``backend`` names the engine (a row of
  :data:`mlla_kernels.backends.BACKENDS_TABLE` with an engine: numba, triton, meta); ``save``
  is False when no gradient is needed (nothing is kept).
- ``mlla_kernels::routed_scan_backward(dy?, dlast?, saved, u, ..., backend) -> grads`` -- the
  gradients of u, delta, A, B, C and of those of D, z, delta_bias that were given.

The four public scans are registered too, as ``torch.ops.mlla_kernels.selective_scan``,
``cross_scan_selective_scan``, ``bidirectional_selective_scan`` and ``routed_selective_scan``
(schemas with a ``backend`` argument; composite: they validate, choose the backend and map
onto ``routed_scan`` with views, exactly as the Python entry points, which they call).

Outputs are laid out by rules the fake implementation shares, independent of the engine: y,
du, ddelta and dz like their input (channels innermost when it has them so, else contiguous),
everything else contiguous; an engine output in another layout is copied (the numba engine's
dB and dC, the Triton engine's y for channels-last inputs).

For export beyond PyTorch (ONNX), :mod:`mlla_kernels.routed_scan.portable` holds a
plain-PyTorch formulation of ``routed_scan`` (chunked, one ``scan`` over chunks), which
``mlla_mm.deploy.onnx.portable_operators`` makes the operator's decomposition while exporting
(docs/deploy.md, "ONNX").
"""
import importlib
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from . import backends
from .route_tables import as_routes, route_table

# The package's own name: 'mlla_kernels', or the name another checkout's copy is loaded under
# beside it (``python -m mlla_kernels.benchmark --against DIR``), whose operators then live in
# a namespace of their own instead of clashing with ours.
NAMESPACE = __package__
OPS = getattr(torch.ops, NAMESPACE)


def _engine(backend: str):
    """The engine module of backend ``backend`` (its table row's ``engine``)."""
    row = backends.TABLE.get(backend)
    if row is None or row.engine is None:
        engines = [r.name for r in backends.BACKENDS_TABLE if r.engine]
        raise ValueError(f'mlla_kernels::routed_scan: backend must name an engine '
                         f'({", ".join(engines)}); got {backend!r}')
    return importlib.import_module(row.engine, __package__)


def format_routes(routes) -> str:
    """Routes as the operator's ``routes`` argument: ``'row,col,row~,col~'``."""
    return ','.join(str(r) for r in as_routes(routes))


def parse_routes(routes: str):
    """The :class:`~mlla_kernels.route_tables.Route` tuple of a ``routes`` argument."""
    return as_routes(tuple(routes.split(',')))


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


# ----------------------------------------------------------------------------------------
# Output layouts: one rule for the real and the fake implementations
# ----------------------------------------------------------------------------------------

def _like(ref: Tensor, shape: Sequence[int], dtype: torch.dtype) -> Tensor:
    """An empty (..., DIM, L) tensor laid out like ``ref`` (same rank): channels innermost
    (stride 1 on DIM) when ``ref`` has them so, else contiguous."""
    if ref.stride(-2) == 1 and shape[-1] > 1 and shape[-2] > 1:
        return ref.new_empty((*shape[:-2], shape[-1], shape[-2]), dtype=dtype).transpose(-1, -2)
    return ref.new_empty(shape, dtype=dtype)


def _into(out: Tensor, layout: Tensor) -> Tensor:
    """``out`` with the strides of ``layout`` (same shape): a re-strided view when the two
    address the same elements (they differ only on size-1 dims), else a copy into it."""
    if out.stride() == layout.stride():
        return out
    if all(a == b for n, a, b in zip(out.shape, out.stride(), layout.stride()) if n > 1):
        return out.as_strided(out.shape, layout.stride())
    return layout.copy_(out)


def _flat(t: Optional[Tensor]) -> Optional[Tensor]:
    """A map (..., H, W) as a sequence (..., H*W)."""
    return None if t is None else t.flatten(-2)


def _y_layout(u: Tensor, delta: Tensor, merge: bool) -> Tensor:
    """The empty flat y: (batch, DIM, L) like u's first route merged, else (batch, K, DIM, L)
    like u."""
    batch, k, dim, height, width = delta.shape
    length = height * width
    ref = _flat(u)
    if merge:
        return _like(ref[:, 0], (batch, dim, length), u.dtype)
    return _like(ref, (batch, k, dim, length), u.dtype)


def _saved_layouts(u, delta, A, backend) -> List[Tensor]:
    batch, k, dim, height, width = delta.shape
    compute = _compute_dtype(u.dtype)
    return [u.new_empty(shape, dtype=dtype) for shape, dtype in
            _engine(backend).saved_shapes(batch, k, dim, height * width, A.shape[-1], compute)]


def _unflat(t: Tensor, like: Tensor) -> Tensor:
    return t.unflatten(-1, like.shape[-2:])


# ----------------------------------------------------------------------------------------
# The forward operator
# ----------------------------------------------------------------------------------------

@torch.library.custom_op(f'{NAMESPACE}::routed_scan', mutates_args=())
def routed_scan(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor],
                z: Optional[Tensor], delta_bias: Optional[Tensor], routes: str,
                delta_softplus: bool, merge: bool, backend: str,
                save: bool) -> Tuple[Tensor, Tensor, List[Tensor]]:
    """The routed scan of K routes over an H x W map on an engine (see the module docstring
    for the layout); returns (y, last_state, saved)."""
    engine = _engine(backend)
    height, width = delta.shape[-2:]
    order = route_table(parse_routes(routes), height, width, u.device)[0]
    y, last, saved = engine.forward(
        _flat(u), _flat(delta), A, _flat(B), _flat(C), D, _flat(z), delta_bias,
        delta_softplus=delta_softplus, order=order, merge=merge, save=save)
    y = _into(y, _y_layout(u, delta, merge))
    saved = [_into(s, s.new_empty(s.shape)) for s in saved] if save else []
    return _unflat(y, delta), last.contiguous(), saved


@routed_scan.register_fake
def _(u, delta, A, B, C, D, z, delta_bias, routes, delta_softplus, merge, backend, save):
    batch, k, dim = delta.shape[:3]
    last = u.new_empty((batch, k, dim, A.shape[-1]), dtype=_compute_dtype(u.dtype))
    saved = _saved_layouts(u, delta, A, backend) if save else []
    return _unflat(_y_layout(u, delta, merge), delta), last, saved


# ----------------------------------------------------------------------------------------
# The backward operator and the autograd formula
# ----------------------------------------------------------------------------------------

def _differentiable(u, delta, A, B, C, D, z, delta_bias) -> List[Tuple[Tensor, bool]]:
    """The inputs that get a gradient, in order, each with whether it is a map."""
    given = [(u, True), (delta, True), (A, False), (B, True), (C, True), (D, False), (z, True),
             (delta_bias, False)]
    return [(t, is_map) for t, is_map in given if t is not None]


def _grad_layout(t: Tensor, is_map: bool, channels_first: bool) -> Tensor:
    """An empty gradient of input t, flat for maps: like t for u, delta and z
    (``channels_first``), contiguous for the rest."""
    if not is_map:
        return t.new_empty(t.shape)
    flat = _flat(t)
    return _like(flat, flat.shape, t.dtype) if channels_first else flat.new_empty(flat.shape)


def _grad_layouts(u, delta, A, B, C, D, z, delta_bias) -> List[Tensor]:
    return [_grad_layout(t, is_map, t is u or t is delta or t is z)
            for t, is_map in _differentiable(u, delta, A, B, C, D, z, delta_bias)]


def _unflat_grads(grads, u, delta, A, B, C, D, z, delta_bias) -> List[Tensor]:
    return [_unflat(g, t) if is_map else g
            for g, (t, is_map) in zip(grads, _differentiable(u, delta, A, B, C, D, z, delta_bias))]


@torch.library.custom_op(f'{NAMESPACE}::routed_scan_backward', mutates_args=())
def routed_scan_backward(dy: Optional[Tensor], dlast: Optional[Tensor], saved: List[Tensor],
                         u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
                         D: Optional[Tensor], z: Optional[Tensor], delta_bias: Optional[Tensor],
                         routes: str, delta_softplus: bool, merge: bool,
                         backend: str) -> List[Tensor]:
    """Gradients of :func:`routed_scan`'s (y, last_state): of u, delta, A, B, C, then of D, z
    and delta_bias where given."""
    if not saved:
        raise RuntimeError('mlla_kernels::routed_scan_backward: the forward saved nothing '
                           '(it ran with save=False: no input required a gradient)')
    engine = _engine(backend)
    height, width = delta.shape[-2:]
    order = route_table(parse_routes(routes), height, width, u.device)[0]
    grads = engine.backward(
        _flat(dy), dlast, list(saved), _flat(u), _flat(delta), A, _flat(B), _flat(C), D,
        _flat(z), delta_bias, delta_softplus=delta_softplus, order=order, merge=merge)
    grads = [g for g in grads if g is not None]
    layouts = _grad_layouts(u, delta, A, B, C, D, z, delta_bias)
    grads = [_into(g.to(t.dtype), t) for g, t in zip(grads, layouts)]
    return _unflat_grads(grads, u, delta, A, B, C, D, z, delta_bias)


@routed_scan_backward.register_fake
def _(dy, dlast, saved, u, delta, A, B, C, D, z, delta_bias, routes, delta_softplus, merge,
      backend):
    return _unflat_grads(_grad_layouts(u, delta, A, B, C, D, z, delta_bias),
                         u, delta, A, B, C, D, z, delta_bias)


def _setup_context(ctx, inputs, output):
    u, delta, A, B, C, D, z, delta_bias, routes, delta_softplus, merge, backend, save = inputs
    ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, *output[2])
    ctx.options = (routes, delta_softplus, merge, backend)
    ctx.set_materialize_grads(False)


def _backward(ctx, dy, dlast, _dsaved):
    u, delta, A, B, C, D, z, delta_bias, *saved = ctx.saved_tensors
    routes, delta_softplus, merge, backend = ctx.options
    if dy is None and dlast is None:
        return (None,) * 13
    grads = iter(OPS.routed_scan_backward(
        dy, dlast, saved, u, delta, A, B, C, D, z, delta_bias, routes, delta_softplus, merge,
        backend))
    du, ddelta, dA, dB, dC = (next(grads) for _ in range(5))
    dD, dz, dbias = (None if t is None else next(grads) for t in (D, z, delta_bias))
    return du, ddelta, dA, dB, dC, dD, dz, dbias, None, None, None, None, None


routed_scan.register_autograd(_backward, setup_context=_setup_context)


def engine(backend: str):
    """Backend ``backend``'s engine as the operator: a function of the map-form arguments
    (:mod:`mlla_kernels.routes`) returning (y, last_state); it keeps the chunk states for the
    backward only when an input requires a gradient."""
    def run(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
            routes=(), merge=True):
        tensors = (u, delta, A, B, C, D, z, delta_bias)
        save = torch.is_grad_enabled() and any(t is not None and t.requires_grad
                                               for t in tensors)
        y, last, _ = OPS.routed_scan(
            u, delta, A, B, C, D, z, delta_bias, format_routes(routes),
            bool(delta_softplus), bool(merge), backend, save)
        return y, last
    run.__name__ = run.__qualname__ = f'routed_scan_{backend}'
    return run


# ----------------------------------------------------------------------------------------
# The public scans as operators (composite: they run the entry points' Python)
# ----------------------------------------------------------------------------------------

_MAP_ARGS = ('Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C, Tensor? D=None, '
             'Tensor? delta_bias=None, bool delta_softplus=True')
#: the public scans' schemas (their Python functions' arguments; routes comma-separated)
PUBLIC_SCHEMAS = {
    'selective_scan': (
        '(Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C, Tensor? D=None, '
        'Tensor? z=None, Tensor? delta_bias=None, bool delta_softplus=False, '
        "str backend='auto') -> (Tensor, Tensor)"),
    'cross_scan_selective_scan': (
        f"({_MAP_ARGS}, int directions=4, str backend='auto') -> Tensor"),
    'bidirectional_selective_scan': (
        '(Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C, Tensor? D=None, '
        'Tensor? z=None, Tensor? delta_bias=None, bool delta_softplus=True, '
        "str backend='auto') -> Tensor"),
    'routed_selective_scan': (
        f"({_MAP_ARGS}, str routes='row,col,row~,col~', bool merge=True, "
        "str backend='auto') -> Tensor"),
}

_LIB = torch.library.Library(NAMESPACE, 'FRAGMENT')


def _public_impl(op: str):
    def impl(*args, **kwargs):
        from . import _run
        # the dispatcher drops trailing arguments equal to their defaults: fill them back in
        schema = getattr(OPS, op).default._schema
        call = {a.name: a.default_value for a in schema.arguments if a.has_default_value()}
        call.update(zip((a.name for a in schema.arguments), args), **kwargs)
        backend = call.pop('backend', 'auto')
        if op == 'selective_scan':
            call['return_last_state'] = True
        if op == 'routed_selective_scan':
            call['routes'] = parse_routes(call['routes'])
        return _run(op, backend, call)
    impl.__name__ = impl.__qualname__ = op
    return impl


for _op, _schema in PUBLIC_SCHEMAS.items():
    _LIB.define(_op + _schema)
    _LIB.impl(_op, _public_impl(_op), 'CompositeImplicitAutograd')

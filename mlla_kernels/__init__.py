"""mlla_kernels: selective-scan kernels for MLLA-MM (torch only; numba and triton optional).

Public entry points, each with ``backend='auto' | 'naive' | 'torch' | 'numba' | 'triton'``:

- :func:`selective_scan` -- Mamba's selective scan.
- :func:`cross_scan_selective_scan` -- VMamba's SS2D core: K-route 2D scan + merge.
- :func:`bidirectional_selective_scan` -- Vim's forward + backward scan.
- :func:`routed_selective_scan` -- a 2D scan over routes given as data (snake, zigzag, spiral,
  raster; :mod:`mlla_kernels.route_tables`), outputs per route or summed (MHS-VM).

All four are routes of one scan (:mod:`mlla_kernels.routes`). Two more operations serve the
models around the scans, with ``naive``, ``torch`` and ``numba`` backends (any other backend
runs ``torch``, as does a traced or compiled call):

- :func:`depthwise_conv2d` -- depthwise conv of a channels-last map, SiLU and residual fused.
- :func:`linear_attention` -- MLLA's linear attention with RoPE, LePE and the output gate.

 ``backend='auto'`` picks
``triton`` for CUDA tensors when triton imports, ``numba`` (fused CPU kernels) for CPU tensors
when numba imports (float64: ``torch``), and ``torch`` otherwise; the environment variable
``MLLA_KERNELS_BACKEND`` (one of the backend names) overrides 'auto'. The backends are the rows
of :data:`mlla_kernels.backends.BACKENDS_TABLE`; :func:`available_backends` lists what can run
here. Backends are imported on first use.
"""
# First, before torch loads libgomp: short OpenMP spin-waits (see openmp.py).
from .openmp import shorten_openmp_spin

shorten_openmp_spin()

import torch  # noqa: E402

# The subpackages share names with the entry points below; importing them first makes the
# functions win the package attributes (a lazy first import would rebind the name to the module).
from . import bidirectional as _bidirectional_pkg  # noqa: F401
from . import cross_scan as _cross_scan_pkg  # noqa: F401
from . import depthwise_conv as _depthwise_conv_pkg  # noqa: F401
from . import linear_attention as _linear_attention_pkg  # noqa: F401
from . import dispatch
from . import library  # registers the torch.ops.mlla_kernels operators
from . import routed_scan as _routed_scan_pkg  # noqa: F401
from . import selective_scan as _selective_scan_pkg  # noqa: F401
from .dispatch import BACKENDS, ENV_VAR, KERNEL_BACKENDS, available_backends, get_impl
from .route_tables import CROSS_SCAN_ROUTES, ROUTE_KINDS, Route, route_table

__all__ = ['selective_scan', 'cross_scan_selective_scan', 'bidirectional_selective_scan',
           'routed_selective_scan', 'depthwise_conv2d', 'linear_attention', 'Route',
           'ROUTE_KINDS', 'CROSS_SCAN_ROUTES', 'route_table',
           'available_backends', 'BACKENDS', 'KERNEL_BACKENDS', 'ENV_VAR']


def _run(op, backend, args):
    """Validate a call once, choose its backend, run it.

    The backend comes from the caller, the environment or 'auto' (:func:`dispatch.request`);
    a backend whose row asks for it is checked against 'torch' at its first use on a GPU
    (:mod:`mlla_kernels.selfcheck`), which may turn an automatic choice into 'torch'. This is
    the implementation of the registered operators ``torch.ops.mlla_kernels.<op>``
    (:mod:`mlla_kernels.library`), which the entry points call.
    """
    if dispatch.OPERATIONS[op].backends is not None and (torch.jit.is_tracing()
                                                          or dispatch._compiling()):
        # the fused ops that are not operators run 'torch' in a traced graph
        # (dispatch.backend_for); choosing a backend would import modules, which Dynamo
        # cannot trace
        dispatch.validate(op, args)
        return get_impl(op, 'torch')(**args)
    wanted = dispatch.request(backend)
    check = dispatch.validate(op, args)
    u = check.tensors[0][1]
    name = dispatch.backend_for(op, dispatch.resolve_backend(wanted.name, u.device, u.dtype))
    check.dtypes(name)
    if dispatch.TABLE[name].selfcheck:
        from . import selfcheck
        name = selfcheck.backend_for(op, wanted.origin, dict(check.tensors), check.sizes, args)
    return get_impl(op, name)(**args)


# The fused ops that are not registered operators (depthwise_conv2d, linear_attention) run
# 'torch' under torch.compile, and Dynamo traces into _run: their torch modules are imported
# now, because Dynamo cannot trace the lazy import (importlib) of a first call.
for _op in ('depthwise_conv2d', 'linear_attention'):
    dispatch._op_module(_op, 'torch')

_TENSOR_ARGS = ('u', 'delta', 'A', 'B', 'C', 'D', 'z', 'delta_bias')


def _call(op, args):
    """Run a public scan as its operator ``torch.ops.mlla_kernels.<op>`` (one node under
    torch.compile and torch.export). Arguments the operator's schema cannot take go straight
    to :func:`_run`, whose checks name the argument and the fix."""
    typed = (all(args.get(k) is None or isinstance(args[k], torch.Tensor) for k in _TENSOR_ARGS)
             and isinstance(args['backend'], str)
             and isinstance(args.get('directions', 0), int))
    if not typed:
        args = dict(args)
        return _run(op, args.pop('backend'), args)
    return getattr(library.OPS, op)(**args)


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   return_last_state=False, backend='auto'):
    """Mamba's selective scan (Gu & Dao, arXiv 2312.00752).

    h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t,  y_t = <C_t, h_t> + D u_t,  y *= silu(z).

    Args:
        u: (batch, D, L) input.
        delta: (batch, D, L) raw step sizes (``delta_bias`` and softplus applied inside).
        A: (D, N) state matrix (diagonal per channel), usually -exp(A_log).
        B, C: (batch, N, L), or grouped (batch, G, N, L) where group g serves channels
            g*D/G ... (g+1)*D/G - 1 (D % G == 0).
        D: optional (D,) skip weight.
        z: optional (batch, D, L) gate: the output is multiplied by silu(z).
        delta_bias: optional (D,) added to delta before the softplus.
        delta_softplus: apply softplus to delta (+ bias).
        return_last_state: also return the final state (batch, D, N) in float32
            (float64 for float64 inputs).
        backend: 'auto', 'naive', 'torch', 'numba' or 'triton'.

    Returns:
        y (batch, D, L) in u's dtype [, last_state].
    """
    y, last = _call('selective_scan', dict(
        u=u, delta=delta, A=A, B=B, C=C, D=D, z=z, delta_bias=delta_bias,
        delta_softplus=bool(delta_softplus), backend=backend))
    return (y, last) if return_last_state else y


def cross_scan_selective_scan(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=True,
                              directions=4, backend='auto'):
    """VMamba's SS2D core: scan K routes over the (H, W) map and merge them back to pixels.

    Route k visits pixels in order: K=4: row-major, column-major, reversed row-major, reversed
    column-major (VMamba v2); K=2: row-major, reversed row-major; K=1: row-major. Route k uses
    channels k*Di ... (k+1)*Di - 1 of A, D, delta_bias and group k of B, C.

    Args:
        u: (batch, Di, H, W), the one map all routes read.
        delta: (batch, K, Di, H, W), per route, in pixel (row-major) layout.
        A: (K*Di, N).
        B, C: (batch, K, N, H, W), per route, in pixel layout.
        D, delta_bias: optional (K*Di,).
        delta_softplus: apply softplus to delta (+ bias).
        directions: K, one of 1, 2, 4.
        backend: 'auto', 'naive', 'torch', 'numba' or 'triton'.

    Returns:
        (batch, Di, H, W) in u's dtype: the sum over routes of each route's output at its pixel.
    """
    return _call('cross_scan_selective_scan', dict(
        u=u, delta=delta, A=A, B=B, C=C, D=D, delta_bias=delta_bias,
        delta_softplus=bool(delta_softplus), directions=directions, backend=backend))


def bidirectional_selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                                 delta_softplus=True, backend='auto'):
    """Vim's bimamba-v2 core: a forward and a backward scan with separate parameters, summed.

    Args:
        u, delta: (batch, 2, Di, L) in the original token order; [:, 0] is scanned forward
            in time, [:, 1] backward (t = L-1 .. 0).
        A: (2, Di, N).
        B, C: (batch, 2, N, L).
        D, delta_bias: optional (2, Di).
        z: optional (batch, Di, L), shared: gates each direction's output.
        delta_softplus: apply softplus to delta (+ bias).
        backend: 'auto', 'naive', 'torch', 'numba' or 'triton'.

    Returns:
        y_fwd + y_bwd: (batch, Di, L) in u's dtype.
    """
    return _call('bidirectional_selective_scan', dict(
        u=u, delta=delta, A=A, B=B, C=C, D=D, z=z, delta_bias=delta_bias,
        delta_softplus=bool(delta_softplus), backend=backend))


def routed_selective_scan(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=True,
                          routes=CROSS_SCAN_ROUTES[4], merge=True, backend='auto'):
    """A 2D selective scan over K routes given as data, outputs per route or summed.

    Route k visits the pixels of the H x W map in the order of ``routes[k]`` (see
    :mod:`mlla_kernels.route_tables`: raster, snake, zigzag and spiral walks, each optionally
    reversed); it reads the one map u (or its own map u[:, k]), its own delta, B and C at the
    pixel it visits, and its output is put back at that pixel. Route k uses channels
    k*Di ... (k+1)*Di - 1 of A, D and delta_bias and group k of B, C. With the default routes
    and ``merge=True`` this is :func:`cross_scan_selective_scan` with ``directions=4``.

    Args:
        u: (batch, Di, H, W), the one map all routes read; or (batch, K, Di, H, W), one map
            per route (several scans over different maps in one call, e.g. MHS-VM's heads).
        delta: (batch, K, Di, H, W), per route, in pixel (row-major) layout.
        A: (K*Di, N).
        B, C: (batch, K, N, H, W), per route, in pixel layout.
        D, delta_bias: optional (K*Di,).
        delta_softplus: apply softplus to delta (+ bias).
        routes: K routes: :class:`Route` objects, kind names (``'spiral'``; ``'spiral~'``
            reversed) or (kind, reverse) pairs.
        merge: sum the routes' outputs (True) or return them apart (False).
        backend: 'auto', 'naive', 'torch', 'numba' or 'triton'.

    Returns:
        merge=True: (batch, Di, H, W), the sum over routes; merge=False: (batch, K, Di, H, W),
        each route's output at its pixels. In u's dtype.
    """
    return _call('routed_selective_scan', dict(
        u=u, delta=delta, A=A, B=B, C=C, D=D, delta_bias=delta_bias,
        delta_softplus=bool(delta_softplus), routes=library.format_routes(routes),
        merge=bool(merge), backend=backend))


def depthwise_conv2d(x, weight, bias=None, padding=None, activation=None, residual=False,
                     backend='auto'):
    """Depthwise 2-D convolution of a channels-last map (stride 1, the output keeps the size),
    with the activation and a residual fused; K kernels may read the one input.

    out[b, h, w, c] = act(bias[c] + sum_{i,j} weight[c, i, j] x[b, h + i - top, w + j - left, c])
    (+ x[b, h, w, c] with ``residual``), x zero outside the map.

    Args:
        x: (batch, H, W, C), channels innermost (MLLA's tokens as a map, VMamba's
            channels-last maps permuted, Vim's tokens as a 1 x L map); other layouts are
            copied once by the fused backend.
        weight: (C, kh, kw) (``conv.weight[:, 0]`` of a groups=C ``nn.Conv2d``), or
            (K, C, kh, kw): K kernels over the same x, output (batch, K, H, W, C).
        bias: optional (C,), or (K, C).
        padding: zeros before the first row and column, (top, left); None centres the
            kernel ((kh - 1) // 2, (kw - 1) // 2); or one (top, left) per kernel (Vim: causal
            (0, k - 1), anti-causal (0, 0)).
        activation: None or 'silu' (applied before the residual).
        residual: add x to the output (one kernel only): CPE, ``x + dwconv(x)``.
        backend: 'auto' (the fused 'numba' kernels on CPU when numba imports, else 'torch'),
            'naive', 'torch' or 'numba'; the scan-only backends run 'torch'.

    Returns:
        (batch, H, W, C), or (batch, K, H, W, C) for a 4-D weight, in x's dtype.
    """
    return _run('depthwise_conv2d', backend, dict(
        x=x, weight=weight, bias=bias, padding=padding, activation=activation,
        residual=residual))


def linear_attention(qk, v, rope_cos, rope_sin, num_heads, lepe_weight=None, lepe_bias=None,
                     gate=None, backend='auto'):
    """MLLA's linear attention (Han et al., NeurIPS 2024) with its RoPE, normaliser, LePE and
    output gate, on a map of n = H*W tokens with C channels in ``num_heads`` heads::

        q, k   = ELU(qk[..., :C]) + 1, ELU(qk[..., C:]) + 1
        q~, k~ = RoPE-2D(q), RoPE-2D(k)              (channel pairs, over all C channels)
        attn   = q~ (k~^T v / n) / (q . mean(k) + 1e-6)         (per head)
        y      = (attn + LePE(v)) * SiLU(gate)       (LePE: depthwise conv of v + bias)

    Args:
        qk: (batch, H, W, 2C): the query/key projection of the tokens, [q | k].
        v: (batch, H, W, C): the tokens (used as the values).
        rope_cos, rope_sin: (H*W, C/2) RoPE tables (token, channel pair), e.g.
            ``mlla_mm.models.layers.rope_2d_tables``.
        num_heads: heads; C / num_heads must be even.
        lepe_weight: optional (C, kh, kw) depthwise kernel (odd sizes, centred), e.g.
            ``lepe.weight[:, 0]``; lepe_bias: optional (C,).
        gate: optional (batch, H, W, C): the output is multiplied by SiLU(gate).
        backend: 'auto' (the fused 'numba' kernels on CPU when numba imports, else 'torch'),
            'naive', 'torch' or 'numba'; the scan-only backends run 'torch'.

    Returns:
        (batch, H, W, C) in v's dtype.
    """
    return _run('linear_attention', backend, dict(
        qk=qk, v=v, rope_cos=rope_cos, rope_sin=rope_sin, num_heads=num_heads,
        lepe_weight=lepe_weight, lepe_bias=lepe_bias, gate=gate))

"""The routed scan in portable PyTorch: standard ops and one ``scan`` over chunks -- what
``mlla_kernels::routed_scan`` becomes for export beyond PyTorch. Written for symbolic H and W
(route tables from ``arange``), but a dynamic export still stops on a symbolic-shape guard of
the chunk padding (docs/deploy.md, "ONNX"): export at a static size.

ONNX (and OpenVINO) cannot run our numba or Triton kernels: while exporting,
``mlla_mm.deploy.onnx.portable_operators`` makes :func:`routed_scan_portable` the decomposition of
the operator, so the ONNX exporter writes standard ops and one ONNX ``Scan`` (docs/deploy.md,
"ONNX"). Its per-step work is batched over the whole sequence; its only sequential part, the
chain of chunk states, is one ``scan`` whose trip count is the number of chunks. Tested
against a step-by-step oracle in tests/test_kernels/test_portable.py.

1. The route tables from the map's size (:func:`route_orders`): ``row`` and ``col`` walks,
   their snakes and reverses are arithmetic on ``arange(H * W)``, so H and W may be symbolic;
   ``zigzag`` and ``spiral`` walks come from :mod:`mlla_kernels.route_tables` and need a fixed
   size (an export with static H, W).
2. Each route's u, delta, B, C gathered into its visiting order; softplus, a = exp(delta A),
   x = delta B u; the sequence padded to whole chunks of ``CHUNK`` steps with delta = 0
   (a = 1, x = 0: the state passes through).
3. Inside every chunk, at once: the zero-start states and the running decay by Hillis-Steele
   doubling (log2(CHUNK) vector steps; only products of decays, nothing overflows).
4. Across chunks: ``S_c = P_c S_{c-1} + E_c`` by ``torch._higher_order_ops.scan`` (an ONNX
   ``Scan``), giving every chunk's start state; the states are the local ones plus the start
   state times the running decay.
5. y = <C, h> + D u per route, scattered back to the pixels it visited, summed over the routes
   (``merge``), times silu(z).

State and accumulation in float32 (float64 for float64 inputs), as the engines. No autograd
formula of its own (PyTorch differentiates the ops); it exists for inference export.
"""
import math
from typing import List, Tuple

import torch
import torch.nn.functional as F

from ..route_tables import Route, as_routes, route_order

#: steps per chunk: a power of two (the doubling runs log2(CHUNK) steps); the chunk chain
#: runs ceil(L / CHUNK) sequential steps
CHUNK = 64

#: kinds :func:`route_orders` builds from a symbolic map size
SYMBOLIC_KINDS = ('row', 'col', 'snake_row', 'snake_col')


def _is_static(*sizes) -> bool:
    return all(isinstance(s, int) for s in sizes)


def route_order_tensor(route: Route, height, width, device) -> torch.Tensor:
    """Route ``route``'s visiting order on an H x W map, (H*W,) int64, in tensor ops (H, W
    may be symbolic for the kinds of :data:`SYMBOLIC_KINDS`)."""
    if _is_static(height, width):
        order = torch.from_numpy(route_order(route, height, width).copy()).to(device)
        return order
    if route.kind not in SYMBOLIC_KINDS:
        raise NotImplementedError(
            f"route {str(route)!r}: the {route.kind} walk is exported only for a fixed map "
            f"size; routes with a symbolic H x W: {', '.join(SYMBOLIC_KINDS)} (and their "
            'reverses). Export with a static input size (no --dynamic).')
    return _symbolic_order(route, height, width, device)


def _symbolic_order(route: Route, height, width, device) -> torch.Tensor:
    """A raster or snake walk (:data:`SYMBOLIC_KINDS`) from ``arange``: H, W may be symbolic."""
    grid = torch.arange(height * width, device=device).view(height, width)
    if route.kind in ('col', 'snake_col'):
        grid = grid.transpose(0, 1)
    if route.kind.startswith('snake'):
        steps = torch.arange(grid.shape[1], device=device)
        odd = (torch.arange(grid.shape[0], device=device) % 2 == 1).unsqueeze(1)
        cols = torch.where(odd, grid.shape[1] - 1 - steps, steps).expand_as(grid)
        grid = torch.gather(grid, 1, cols)
    order = grid.reshape(-1)
    return order.flip(0) if route.reverse else order


def route_orders(routes, height, width, device) -> torch.Tensor:
    """(K, H*W) int64: the pixel route k visits at step t (``routes`` as the operator's
    comma-separated string or a sequence of routes)."""
    if isinstance(routes, str):
        routes = tuple(routes.split(','))
    return torch.stack([route_order_tensor(r, height, width, device) for r in as_routes(routes)])


def _doubling(a: torch.Tensor, x: torch.Tensor, dim: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Zero-start linear scan x_t += a_t x_{t-1} along ``dim`` (a static size, a power of two)
    by doubling; returns (states, running products of a)."""
    n = a.shape[dim]
    k = 1
    while k < n:
        head_a, tail_a = a.narrow(dim, 0, k), a.narrow(dim, k, n - k)
        head_x, tail_x = x.narrow(dim, 0, k), x.narrow(dim, k, n - k)
        x = torch.cat([head_x, tail_x + tail_a * x.narrow(dim, 0, n - k)], dim)
        a = torch.cat([head_a, tail_a * a.narrow(dim, 0, n - k)], dim)
        k *= 2
    return x, a


def _chain(carry: torch.Tensor, xs: List[torch.Tensor]):
    """One chunk of the chain: (start state) -> (end state), emitting the start state."""
    decay, local_end = xs
    return decay * carry + local_end, carry.clone()


def routed_scan_portable(u, delta, A, B, C, D=None, z=None, delta_bias=None, routes='row',
                         delta_softplus=False, merge=True, backend='portable', save=False):
    """``mlla_kernels::routed_scan`` (map layout, see :mod:`mlla_kernels.library`) in portable
    ops; returns (y, last_state, []) like the operator. ``backend`` and ``save`` are ignored
    (there is no engine and nothing to save)."""
    from torch._higher_order_ops.scan import scan

    if isinstance(routes, str):
        routes = tuple(routes.split(','))
    dtype_in = u.dtype
    compute = torch.float64 if dtype_in == torch.float64 else torch.float32
    batch, k, dim, height, width = delta.shape
    groups, n_state = B.shape[2], B.shape[3]
    length = height * width
    order = route_orders(routes, height, width, u.device)                 # (K, L)

    def along(t, channels):   # (batch, K or 1, channels, H, W) -> (batch, K, channels, L)
        t = t.reshape(batch, t.shape[1], channels, length).expand(batch, k, channels, length)
        idx = order.view(1, k, 1, length).expand(batch, k, channels, length)
        return torch.gather(t.to(compute), 3, idx)

    us = along(u, dim)
    dts = along(delta, dim)
    if delta_bias is not None:
        dts = dts + delta_bias.to(compute).view(1, k, dim, 1)
    if delta_softplus:
        dts = F.softplus(dts)
    Bs = along(B.reshape(batch, k, groups * n_state, height, width), groups * n_state)
    Cs = along(C.reshape(batch, k, groups * n_state, height, width), groups * n_state)

    # chunked layout: (batch, K, G, Dg, c, T, N)
    pad = (-length) % CHUNK
    n_chunks = (length + pad) // CHUNK

    def chunked(t, channels, state):
        t = F.pad(t, (0, pad))
        if state:   # (batch, K, G*N, L) -> (batch, K, G, 1, c, T, N)
            t = t.view(batch, k, groups, n_state, n_chunks, CHUNK)
            return t.permute(0, 1, 2, 4, 5, 3).unsqueeze(3)
        return t.view(batch, k, groups, channels // groups, n_chunks, CHUNK, 1)

    dt_c, u_c = chunked(dts, dim, False), chunked(us, dim, False)
    A_c = A.to(compute).view(1, k, groups, dim // groups, 1, 1, n_state)
    a = torch.exp(dt_c * A_c)                                             # (b,K,G,Dg,c,T,N)
    x = (dt_c * u_c) * chunked(Bs, dim, True)
    h_local, decay = _doubling(a, x, dim=5)
    # the chain over chunks: scan over the chunk axis moved to the front
    ends = h_local.select(5, CHUNK - 1).movedim(4, 0)                     # (c, b,K,G,Dg,N)
    decays = decay.select(5, CHUNK - 1).movedim(4, 0)
    init = torch.zeros_like(ends[0])
    last, starts = scan(_chain, init, [decays, ends])
    h = h_local + decay * starts.movedim(0, 4).unsqueeze(5)
    y = (h * chunked(Cs, dim, True)).sum(-1)                             # (b,K,G,Dg,c,T)
    y = y.reshape(batch, k, dim, n_chunks * CHUNK)[..., :length]
    if D is not None:
        y = y + D.to(compute).view(1, k, dim, 1) * us
    # back to the pixels each route visited
    idx = order.view(1, k, 1, length).expand(batch, k, dim, length)
    y = torch.zeros_like(y).scatter(3, idx, y)
    if merge:
        y = y.sum(1)
    if z is not None:
        gate = F.silu(z.to(compute).reshape(batch, dim, length))
        y = y * (gate if merge else gate.unsqueeze(1))
    y_shape = (batch, dim, height, width) if merge else (batch, k, dim, height, width)
    last = last.reshape(batch, k, dim, n_state)
    return y.to(dtype_in).view(y_shape), last, []


def chunk_steps(length: int) -> int:
    """Sequential steps of the chunk chain for a sequence of ``length``."""
    return math.ceil(length / CHUNK)

"""The routed scan in PyTorch: the routes' sequences as channel groups of one chunked scan.

Route k's inputs (u, delta, B, C) are put in its visiting order and the K sequences run as K
channel groups of a single :func:`~mlla_kernels.selective_scan.torch.selective_scan_torch`
(B and C grouped per route, so they need no per-channel copies); each route's output goes back
to pixel order and, when merged, the routes are summed.

Raster routes (``row``, ``col`` and their reverses: VMamba's cross-scan) take flipped /
transposed views stacked into one copy, and go back by an un-flip and one transpose per walk
(reversed routes are flipped and added to their forward twin first) -- measured faster on CPU
than an index gather (docs/kernels.md). Any other route is gathered along its order table and
put back by its inverse table.
"""
import torch

from ..route_tables import as_routes, route_table
from ..selective_scan.torch import selective_scan_torch

#: raster kinds -> column-major walk?
RASTER = {'row': False, 'col': True}


def _raster_view(x, route):
    """(..., H, W) pixel layout -> (..., L) in the raster route's visiting order."""
    if RASTER[route.kind]:
        x = x.transpose(-1, -2)
    x = x.flatten(-2) if x.is_contiguous() else x.reshape(*x.shape[:-2], -1)
    return x.flip(-1) if route.reverse else x


def _raster_sequences(maps, routes):
    """maps: per route a (batch, n, H, W) tensor -> (batch, K, n, L) in route order."""
    return torch.stack([_raster_view(m, r) for m, r in zip(maps, routes)], 1)


def _raster_merge(ys, routes, height, width):
    """(batch, K, Di, L) route outputs -> their sum at the pixels (batch, Di, H, W)."""
    batch, _, dim, _ = ys.shape
    walks = {}
    for k, route in enumerate(routes):
        y = ys[:, k].flip(-1) if route.reverse else ys[:, k]
        column_major = RASTER[route.kind]
        walks[column_major] = y if column_major not in walks else walks[column_major] + y
    out = None
    for column_major, y in walks.items():
        y = (y.view(batch, dim, width, height).transpose(-1, -2) if column_major
             else y.view(batch, dim, height, width))
        out = y if out is None else out + y
    return out


def _raster_apart(ys, routes, height, width):
    """(batch, K, Di, L) route outputs -> each at its pixels (batch, K, Di, H, W)."""
    batch, k, dim, _ = ys.shape
    out = []
    for i, route in enumerate(routes):
        y = ys[:, i].flip(-1) if route.reverse else ys[:, i]
        out.append(y.view(batch, dim, width, height).transpose(-1, -2) if RASTER[route.kind]
                   else y.view(batch, dim, height, width))
    return torch.stack(out, 1)


def _gathered_sequences(maps, order):
    """(batch, K, n, H, W) -> (batch, K, n, L) in route order, by the order table."""
    batch, k, n = maps.shape[:3]
    flat = maps.reshape(batch, k, n, -1)
    return torch.gather(flat, 3, order[None, :, None, :].expand(batch, k, n, flat.shape[-1]))


def routed_selective_scan_torch(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=True,
                                routes=(), merge=True, **plan):
    """See :func:`mlla_kernels.routed_selective_scan`; ``plan`` (block_len, chunk_len) goes to
    the scan."""
    routes = as_routes(routes)
    batch, dim, height, width = u.shape
    k, length = len(routes), height * width
    raster = all(r.kind in RASTER for r in routes)
    if raster:
        us = _raster_sequences([u] * k, routes)
        deltas = _raster_sequences(delta.unbind(1), routes)
        Bs = _raster_sequences(B.unbind(1), routes)
        Cs = _raster_sequences(C.unbind(1), routes)
    else:
        order, inverse = route_table(routes, height, width, u.device)
        us = _gathered_sequences(u.unsqueeze(1).expand(batch, k, dim, height, width), order)
        deltas, Bs, Cs = (_gathered_sequences(t, order) for t in (delta, B, C))
    ys = selective_scan_torch(us.reshape(batch, k * dim, length),
                              deltas.reshape(batch, k * dim, length), A, Bs, Cs, D=D,
                              delta_bias=delta_bias, delta_softplus=delta_softplus, **plan)
    ys = ys.view(batch, k, dim, length)
    if raster:
        return (_raster_merge(ys, routes, height, width) if merge
                else _raster_apart(ys, routes, height, width))
    ys = torch.gather(ys, 3, inverse[None, :, None, :].expand(batch, k, dim, length))
    if merge:
        return ys.sum(1).view(batch, dim, height, width)
    return ys.view(batch, k, dim, height, width)

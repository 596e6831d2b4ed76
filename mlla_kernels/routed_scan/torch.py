"""The routed scan in PyTorch: the routes' sequences as channel groups of one chunked scan.

Route k's inputs (u, delta, B, C) are gathered into its visiting order by its order table, the
K sequences run as K channel groups of a single
:func:`~mlla_kernels.selective_scan.torch.selective_scan_torch` (B and C grouped per route, so
they need no per-channel copies), and each route's output is put back at its pixels by its
inverse table (summed over the routes when merged). The torch scan cannot index in place, so
these are copies. For VMamba's raster routes, flipped/transposed views instead of the gathers
measured no faster for the whole op (gather/raster 0.98-1.03x, docs/kernels.md), so every route
takes the one path.
"""
import torch

from ..route_tables import as_routes, route_table
from ..selective_scan.torch import selective_scan_torch


def _in_route_order(maps, order):
    """(batch, K, n, H, W) pixel maps -> (batch, K, n, L) in each route's visiting order."""
    batch, k, n = maps.shape[:3]
    flat = maps.reshape(batch, k, n, -1)
    return torch.gather(flat, 3, order[None, :, None, :].expand(batch, k, n, flat.shape[-1]))


def routed_selective_scan_torch(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=True,
                                routes=(), merge=True, **plan):
    """See :func:`mlla_kernels.routed_selective_scan`; ``plan`` (block_len, chunk_len) goes to
    the scan."""
    routes = as_routes(routes)
    batch, (dim, height, width) = u.shape[0], u.shape[-3:]
    k, length = len(routes), height * width
    order, inverse = route_table(routes, height, width, u.device)
    per_route = u if u.dim() == 5 else u.unsqueeze(1)
    us = _in_route_order(per_route.expand(batch, k, dim, height, width), order)
    deltas, Bs, Cs = (_in_route_order(t, order) for t in (delta, B, C))
    ys = selective_scan_torch(us.reshape(batch, k * dim, length),
                              deltas.reshape(batch, k * dim, length), A, Bs, Cs, D=D,
                              delta_bias=delta_bias, delta_softplus=delta_softplus, **plan)
    ys = torch.gather(ys.view(batch, k, dim, length), 3,
                      inverse[None, :, None, :].expand(batch, k, dim, length))
    if merge:
        return ys.sum(1).view(batch, dim, height, width)
    return ys.view(batch, k, dim, height, width)

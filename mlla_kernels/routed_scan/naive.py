"""Reference routed scan: gather each route's sequence by its order table, scan them all with
the naive selective scan (routes as channel groups), put each route's outputs back at their
pixels by its inverse table (and sum them when ``merge``)."""
import torch

from ..route_tables import route_table
from ..selective_scan.naive import selective_scan_naive


def routed_selective_scan_naive(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=True,
                                routes=(), merge=True):
    """See :func:`mlla_kernels.routed_selective_scan`."""
    batch, (dim, height, width) = u.shape[0], u.shape[-3:]
    k, length, n_state = len(routes), height * width, A.shape[1]
    order, inverse = route_table(routes, height, width, u.device)

    def along(t, n):   # (batch, K, n, L) in pixel order -> route order
        return torch.gather(t, 3, order[None, :, None, :].expand(batch, k, n, length))

    u_flat = u.reshape(batch, -1, dim, length).expand(batch, k, dim, length)  # shared or per route
    us = along(u_flat, dim).reshape(batch, k * dim, length)
    deltas = along(delta.reshape(batch, k, dim, length), dim).reshape(batch, k * dim, length)
    Bs = along(B.reshape(batch, k, n_state, length), n_state)
    Cs = along(C.reshape(batch, k, n_state, length), n_state)
    ys = selective_scan_naive(us, deltas, A, Bs, Cs, D=D, delta_bias=delta_bias,
                              delta_softplus=delta_softplus)
    ys = torch.gather(ys.view(batch, k, dim, length), 3,
                      inverse[None, :, None, :].expand(batch, k, dim, length))
    if merge:
        return ys.sum(1).view(batch, dim, height, width)
    return ys.view(batch, k, dim, height, width)

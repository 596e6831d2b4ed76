"""Reference routed scan: gather each route's sequence, scan it with the naive selective scan,
put its outputs back at their pixels (and sum them when ``merge``)."""
import torch

from ..route_tables import route_table
from ..selective_scan.naive import selective_scan_naive


def gathered_routed_scan(scan, u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=True,
                         routes=(), merge=True):
    """The routed scan on gathered copies: route k's inputs are indexed by its ``order``
    table into a (batch, K*Di, L) sequence, ``scan`` (a selective scan with B, C grouped per
    route) runs them all at once, and each route's outputs are gathered back to pixel order
    by its ``inverse`` table."""
    batch, dim, height, width = u.shape
    k, length = len(routes), height * width
    order, inverse = route_table(routes, height, width, u.device)

    def along(t, n):   # (batch, K, n, L) in pixel order -> route order
        return torch.gather(t, 3, order[None, :, None, :].expand(batch, k, n, length))

    u_flat = u.reshape(batch, 1, dim, length).expand(batch, k, dim, length)
    us = along(u_flat, dim).reshape(batch, k * dim, length)
    deltas = along(delta.reshape(batch, k, dim, length), dim).reshape(batch, k * dim, length)
    n_state = A.shape[1]
    Bs = along(B.reshape(batch, k, n_state, length), n_state)
    Cs = along(C.reshape(batch, k, n_state, length), n_state)
    ys = scan(us, deltas, A, Bs, Cs, D=D, delta_bias=delta_bias, delta_softplus=delta_softplus)
    ys = ys.view(batch, k, dim, length)
    ys = torch.gather(ys, 3, inverse[None, :, None, :].expand(batch, k, dim, length))
    if merge:
        return ys.sum(1).view(batch, dim, height, width)
    return ys.view(batch, k, dim, height, width)


def routed_selective_scan_naive(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=True,
                                routes=(), merge=True):
    """See :func:`mlla_kernels.routed_selective_scan`."""
    return gathered_routed_scan(selective_scan_naive, u, delta, A, B, C, D=D,
                                delta_bias=delta_bias, delta_softplus=delta_softplus,
                                routes=routes, merge=merge)

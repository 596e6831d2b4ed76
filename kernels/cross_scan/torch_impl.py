"""VMamba's SS2D core in PyTorch: routed copies by flips/transposes, one chunked scan, merge.

The K routes become K channel groups of a single selective scan (G = K), so B and C need no
per-channel copies. Each routed copy (u, delta, B, C) is one ``stack`` of flipped/transposed
views (a strided copy; several times faster on CPU than an index gather), and the merge undoes
them: reversed routes are flipped and added to their forward twin before the one transpose back.
"""
import torch

from ..selective_scan.torch_impl import selective_scan_torch

# route k -> (column-major, reversed), in VMamba v2's order
_ROUTES = {1: [(False, False)],
           2: [(False, False), (False, True)],
           4: [(False, False), (True, False), (False, True), (True, True)]}


def _to_route(x, column_major, reversed_):
    """(..., H, W) pixel layout -> (..., L) in the route's visiting order (a view)."""
    if column_major:
        x = x.transpose(-1, -2)
    x = x.flatten(-2) if x.is_contiguous() else x.reshape(*x.shape[:-2], -1)
    return x.flip(-1) if reversed_ else x


def cross_scan_selective_scan_torch(u, delta, A, B, C, D=None, delta_bias=None,
                                    delta_softplus=True, directions=4, **plan):
    """See :func:`mlla_kernels.cross_scan_selective_scan`; ``plan`` goes to the scan."""
    batch, dim, height, width = u.shape
    routes = _ROUTES[directions]
    us = torch.stack([_to_route(u, *r) for r in routes], 1).view(batch, -1, height * width)
    deltas = torch.stack([_to_route(delta[:, k], *r) for k, r in enumerate(routes)], 1)
    Bs = torch.stack([_to_route(B[:, k], *r) for k, r in enumerate(routes)], 1)
    Cs = torch.stack([_to_route(C[:, k], *r) for k, r in enumerate(routes)], 1)
    ys = selective_scan_torch(us, deltas.view(batch, -1, height * width), A, Bs, Cs, D=D,
                              delta_bias=delta_bias, delta_softplus=delta_softplus, **plan)
    ys = ys.view(batch, len(routes), dim, height * width)
    # route outputs grouped by walk (row- / column-major); a reversed route is flipped back
    walks = {}
    for k, (column_major, reversed_) in enumerate(routes):
        y = ys[:, k].flip(-1) if reversed_ else ys[:, k]
        walks[column_major] = y if column_major not in walks else walks[column_major] + y
    out = walks[False].view(batch, dim, height, width)
    if True in walks:
        out = out + walks[True].view(batch, dim, width, height).transpose(-1, -2)
    return out

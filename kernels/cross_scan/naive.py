"""Reference 2D cross-scan + selective scan + cross-merge (VMamba's SS2D core).

Materializes the K routed copies (which the fast kernels avoid), scans them
with the naive selective scan and merges them back to pixels.
"""
from typing import List

import torch

from ..selective_scan.naive import selective_scan_naive


def route_indices(height: int, width: int, directions: int, device=None) -> List[torch.Tensor]:
    """For each route k, the row-major pixel index visited at step t.

    K=4: row-major, column-major, reversed row-major, reversed column-major
    (VMamba v2's order, so its checkpoints give the same results).
    K=2: row-major and reversed row-major. K=1: row-major.
    """
    rows = torch.arange(height * width, device=device)
    cols = rows.view(height, width).t().reshape(-1)
    routes = {1: [rows], 2: [rows, rows.flip(0)], 4: [rows, cols, rows.flip(0), cols.flip(0)]}
    if directions not in routes:
        raise ValueError(f'directions must be one of 1, 2, 4; got {directions}')
    return routes[directions]


def cross_scan_selective_scan_naive(u, delta, A, B, C, D=None, delta_bias=None,
                                    delta_softplus=True, directions=4):
    batch, dim, height, width = u.shape
    k = directions
    length = height * width
    routes = route_indices(height, width, k, u.device)
    u_flat = u.reshape(batch, dim, length)
    delta_flat = delta.reshape(batch, k, dim, length)
    B_flat = B.reshape(batch, k, -1, length)
    C_flat = C.reshape(batch, k, -1, length)
    us = torch.cat([u_flat[..., r] for r in routes], dim=1)                    # (batch, K*D, L)
    deltas = torch.cat([delta_flat[:, i][..., r] for i, r in enumerate(routes)], dim=1)
    Bs = torch.stack([B_flat[:, i][..., r] for i, r in enumerate(routes)], dim=1)
    Cs = torch.stack([C_flat[:, i][..., r] for i, r in enumerate(routes)], dim=1)
    ys = selective_scan_naive(us, deltas, A, Bs, Cs, D=D, delta_bias=delta_bias,
                              delta_softplus=delta_softplus)
    ys = ys.view(batch, k, dim, length)
    out = torch.zeros_like(u_flat, dtype=ys.dtype)
    for i, r in enumerate(routes):
        out[..., r] += ys[:, i]
    return out.view(batch, dim, height, width)

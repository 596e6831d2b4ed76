"""Reference 2D cross-scan + selective scan + cross-merge (VMamba's SS2D core): the routed
reference scan over :data:`~mlla_kernels.route_tables.CROSS_SCAN_ROUTES`, which materializes the
K routed copies (the fast kernels avoid them), scans them with the naive selective scan and
merges them back to pixels."""
from typing import List

import torch

from ..route_tables import CROSS_SCAN_ROUTES, route_table
from ..routed_scan.naive import routed_selective_scan_naive


def route_indices(height: int, width: int, directions: int, device=None) -> List[torch.Tensor]:
    """For each route k of ``CROSS_SCAN_ROUTES[directions]``, the row-major pixel index visited
    at step t. K=4: row-major, column-major, reversed row-major, reversed column-major
    (VMamba v2's order, so its checkpoints give the same results); K=2: row-major and
    reversed row-major; K=1: row-major."""
    if directions not in CROSS_SCAN_ROUTES:
        raise ValueError(f'directions must be one of 1, 2, 4; got {directions}')
    return list(route_table(CROSS_SCAN_ROUTES[directions], height, width, device)[0])


def cross_scan_selective_scan_naive(u, delta, A, B, C, D=None, delta_bias=None,
                                    delta_softplus=True, directions=4):
    """See :func:`mlla_kernels.cross_scan_selective_scan`."""
    return routed_selective_scan_naive(u, delta, A, B, C, D=D, delta_bias=delta_bias,
                                       delta_softplus=delta_softplus,
                                       routes=CROSS_SCAN_ROUTES[directions])

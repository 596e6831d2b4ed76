"""Fused CPU selective scan (numba), forward and recompute-backward: one route of
:mod:`mlla_kernels.numba_utils`, forward or (``reverse=True``) backward in time."""
from ..numba_utils import routed_scan
from ..routes import selective_scan_routes


def selective_scan_numba(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                         delta_softplus=False, return_last_state=False, reverse=False):
    """See :func:`mlla_kernels.selective_scan`; ``reverse=True`` scans t = L-1 .. 0."""
    y, last_state = routed_scan(delta_softplus=delta_softplus, **selective_scan_routes(
        u, delta, A, B, C, D=D, z=z, delta_bias=delta_bias, reverse=reverse))
    return (y, last_state[:, 0]) if return_last_state else y

"""Routed scan on the numba backend: gathered route copies through the numba selective scan
(a first version: the fused kernels will index the tables in place)."""
from ..selective_scan.numba_impl import selective_scan_numba
from .naive import gathered_routed_scan


def routed_selective_scan_numba(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=True,
                                routes=(), merge=True):
    """See :func:`mlla_kernels.routed_selective_scan`."""
    return gathered_routed_scan(selective_scan_numba, u, delta, A, B, C, D=D,
                                delta_bias=delta_bias, delta_softplus=delta_softplus,
                                routes=routes, merge=merge)

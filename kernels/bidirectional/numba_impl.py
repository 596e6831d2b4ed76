"""Fused CPU bidirectional selective scan (numba): route 1 walks the tokens backwards in
time by index arithmetic, so nothing is flipped; both routes share the gate z."""
from ..numba_utils import routed_scan
from ..routes import bidirectional_routes


def bidirectional_selective_scan_numba(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                                       delta_softplus=True):
    """See :func:`mlla_kernels.bidirectional_selective_scan`."""
    y, _ = routed_scan(delta_softplus=delta_softplus, **bidirectional_routes(
        u, delta, A, B, C, D=D, z=z, delta_bias=delta_bias))
    return y

"""Fused CPU 2D cross-scan + selective scan + cross-merge (numba): the K routes walk the
H x W map by index arithmetic, so no routed copy of the input or the output exists."""
from ..numba_utils import routed_scan
from ..routes import cross_scan_routes


def cross_scan_selective_scan_numba(u, delta, A, B, C, D=None, delta_bias=None,
                                    delta_softplus=True, directions=4):
    """See :func:`mlla_kernels.cross_scan_selective_scan`. The output is laid out like u
    (channels innermost if u has them so)."""
    batch, dim, height, width = u.shape
    y, _ = routed_scan(delta_softplus=delta_softplus, **cross_scan_routes(
        u, delta, A, B, C, D=D, delta_bias=delta_bias, directions=directions))
    return y.view(batch, dim, height, width)

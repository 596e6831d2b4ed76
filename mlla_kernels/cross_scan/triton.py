"""VMamba's SS2D core on the Triton kernels: the routes ``CROSS_SCAN_ROUTES[directions]`` of
the H x W map, read and written in place (no routed copy), see
:mod:`mlla_kernels.routed_scan.triton`."""
from .. import routes
from ..dispatch import checked
from ..library import engine

routed_scan = engine('triton')


@checked('cross_scan_selective_scan', 'triton')
def cross_scan_selective_scan_triton(u, delta, A, B, C, D=None, delta_bias=None,
                                     delta_softplus=True, directions=4):
    """See :func:`mlla_kernels.cross_scan_selective_scan`. The output is laid out like u
    (channels innermost if u has them so)."""
    return routes.cross_scan_selective_scan(routed_scan, u, delta, A, B, C, D=D,
                                            delta_bias=delta_bias,
                                            delta_softplus=delta_softplus,
                                            directions=directions)

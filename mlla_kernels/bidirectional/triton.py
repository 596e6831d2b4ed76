"""Vim's bidirectional scan on the Triton kernels: the routes ``row, row~`` of a 1 x L map
sharing the gate z (nothing is flipped), see :mod:`mlla_kernels.routed_scan.triton`."""
from .. import routes
from ..dispatch import checked
from ..library import engine

routed_scan = engine('triton')


@checked('bidirectional_selective_scan', 'triton')
def bidirectional_selective_scan_triton(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                                        delta_softplus=True):
    """See :func:`mlla_kernels.bidirectional_selective_scan`."""
    return routes.bidirectional_selective_scan(routed_scan, u, delta, A, B, C, D=D, z=z,
                                               delta_bias=delta_bias,
                                               delta_softplus=delta_softplus)

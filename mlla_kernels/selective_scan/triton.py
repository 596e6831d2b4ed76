"""Mamba's selective scan on the Triton kernels: the route ``row`` (``row~`` with
``reverse=True``) of a 1 x L map, see :mod:`mlla_kernels.routed_scan.triton`."""
from .. import routes
from ..dispatch import checked
from ..library import engine

routed_scan = engine('triton')


@checked('selective_scan', 'triton')
def selective_scan_triton(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                          delta_softplus=False, return_last_state=False, reverse=False):
    """See :func:`mlla_kernels.selective_scan`; ``reverse=True`` scans t = L-1 .. 0."""
    return routes.selective_scan(routed_scan, u, delta, A, B, C, D=D, z=z,
                                 delta_bias=delta_bias, delta_softplus=delta_softplus,
                                 return_last_state=return_last_state, reverse=reverse)

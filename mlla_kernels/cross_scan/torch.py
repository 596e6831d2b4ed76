"""VMamba's SS2D core in PyTorch: the routed torch scan over
:data:`~mlla_kernels.route_tables.CROSS_SCAN_ROUTES` (one chunked scan with the routes as
channel groups, merged back)."""
from ..route_tables import CROSS_SCAN_ROUTES
from ..routed_scan.torch import routed_selective_scan_torch


def cross_scan_selective_scan_torch(u, delta, A, B, C, D=None, delta_bias=None,
                                    delta_softplus=True, directions=4, **plan):
    """See :func:`mlla_kernels.cross_scan_selective_scan`; ``plan`` goes to the scan."""
    return routed_selective_scan_torch(u, delta, A, B, C, D=D, delta_bias=delta_bias,
                                       delta_softplus=delta_softplus,
                                       routes=CROSS_SCAN_ROUTES[directions], **plan)

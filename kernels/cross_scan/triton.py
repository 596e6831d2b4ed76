"""Triton 2D cross-scan + selective scan + cross-merge (VMamba's SS2D core).

Route k walks the H x W map by index arithmetic inside the kernel (see
:mod:`mlla_kernels.triton_utils`): it reads u, delta, B and C at the pixel it visits and adds
its output there, so neither the K routed copies of the input nor those of the output exist.
"""
from ..routes import CROSS_SCAN_MASKS, cross_scan_routes
from ..triton_utils import routed_scan


def cross_scan_selective_scan_triton(u, delta, A, B, C, D=None, delta_bias=None,
                                     delta_softplus=True, directions=4):
    """See :func:`mlla_kernels.cross_scan_selective_scan` for shapes and route order.

    Returns y (batch, Di, H, W) in u's dtype: the sum over routes of each route's scan
    output at the pixel it came from.
    """
    if directions not in CROSS_SCAN_MASKS:
        raise ValueError(f'cross_scan_selective_scan: directions must be one of 1, 2, 4; '
                         f'got {directions}')
    if u.dim() != 4:
        raise ValueError(f'cross_scan_selective_scan: u must be (batch, Di, H, W); '
                         f'got {tuple(u.shape)}')
    batch, dim, height, width = u.shape
    k = directions
    expected = {'delta': (delta, (batch, k, dim, height, width)),
                'A': (A, (k * dim, None)),
                'D': (D, (k * dim,)), 'delta_bias': (delta_bias, (k * dim,))}
    for name, (t, shape) in expected.items():
        if t is not None and (t.dim() != len(shape) or any(
                s is not None and s != have for s, have in zip(shape, t.shape))):
            raise ValueError(f'cross_scan_selective_scan: {name} must have shape '
                             f'{tuple("N" if s is None else s for s in shape)} for u of shape '
                             f'{tuple(u.shape)} and directions={k}; got {tuple(t.shape)}')
    n_state = A.shape[1]
    for name, t in (('B', B), ('C', C)):
        if tuple(t.shape) != (batch, k, n_state, height, width):
            raise ValueError(f'cross_scan_selective_scan: {name} must have shape '
                             f'{(batch, k, n_state, height, width)}; got {tuple(t.shape)}')
    y, _ = routed_scan(delta_softplus=delta_softplus, **cross_scan_routes(
        u, delta, A, B, C, D=D, delta_bias=delta_bias, directions=k))
    return y.view(batch, dim, height, width)

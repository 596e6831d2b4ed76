"""Triton 2D cross-scan + selective scan + cross-merge (VMamba's SS2D core).

Route k walks the H x W map by index arithmetic inside the kernel (see
:mod:`mlla_kernels.triton_utils`): it reads u, delta, B and C at the pixel it visits and adds
its output there, so neither the K routed copies of the input nor those of the output exist.
"""
from ..triton_utils import routed_scan

# route k -> (column-major?, reversed?) as bit k of two masks; VMamba v2's route order:
# K=4: row-major, column-major, reversed row-major, reversed column-major;
# K=2: row-major, reversed row-major; K=1: row-major.
_ROUTE_MASKS = {1: (0b0000, 0b0000), 2: (0b0000, 0b0010), 4: (0b1010, 0b1100)}


def cross_scan_selective_scan_triton(u, delta, A, B, C, D=None, delta_bias=None,
                                     delta_softplus=True, directions=4):
    """See :func:`mlla_kernels.cross_scan_selective_scan` for shapes and route order.

    Returns y (batch, Di, H, W) in u's dtype: the sum over routes of each route's scan
    output at the pixel it came from.
    """
    if directions not in _ROUTE_MASKS:
        raise ValueError(f'cross_scan_selective_scan: directions must be one of 1, 2, 4; '
                         f'got {directions}')
    if u.dim() != 4:
        raise ValueError(f'cross_scan_selective_scan: u must be (batch, Di, H, W); '
                         f'got {tuple(u.shape)}')
    batch, dim, height, width = u.shape
    k = directions
    length = height * width
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
    col_mask, rev_mask = _ROUTE_MASKS[k]
    y, _ = routed_scan(
        u.reshape(batch, 1, dim, length), delta.reshape(batch, k, dim, length),
        A.reshape(k, dim, n_state), B.reshape(batch, k, 1, n_state, length),
        C.reshape(batch, k, 1, n_state, length),
        D=None if D is None else D.reshape(k, dim),
        delta_bias=None if delta_bias is None else delta_bias.reshape(k, dim),
        delta_softplus=delta_softplus, height=height, width=width,
        col_mask=col_mask, rev_mask=rev_mask)
    return y.view(batch, dim, height, width)

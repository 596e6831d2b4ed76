"""Triton selective scan (forward and backward), on the shared routed-scan kernels.

A plain selective scan is one route over L steps, forward or (``reverse=True``) backward in
time; see :mod:`mlla_kernels.triton_utils` for the kernels.
"""
from ..routes import selective_scan_routes
from ..triton_utils import routed_scan


def selective_scan_triton(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                          delta_softplus=False, return_last_state=False, reverse=False):
    """Mamba's selective scan; see :func:`mlla_kernels.selective_scan` for shapes.

    ``reverse=True`` scans t = L-1 .. 0 without flipping any tensor. Returns y (batch, D, L)
    in u's dtype [, last_state (batch, D, N) float32, the state after the last step taken].
    """
    if u.dim() != 3 or delta.shape != u.shape:
        raise ValueError(f'selective_scan: u and delta must both be (batch, D, L); got '
                         f'{tuple(u.shape)} and {tuple(delta.shape)}')
    batch, dim, length = u.shape
    if A.dim() != 2 or A.shape[0] != dim:
        raise ValueError(f'selective_scan: A must be (D, N) = ({dim}, N); got {tuple(A.shape)}')
    n_state = A.shape[1]
    B5, C5 = (_grouped(name, t, batch, dim, n_state, length) for name, t in (('B', B), ('C', C)))
    if B5.shape[2] != C5.shape[2]:
        raise ValueError(f'selective_scan: B and C must have the same number of groups; got '
                         f'{tuple(B.shape)} and {tuple(C.shape)}')
    for name, t, shape in (('D', D, (dim,)), ('delta_bias', delta_bias, (dim,)),
                           ('z', z, (batch, dim, length))):
        if t is not None and tuple(t.shape) != shape:
            raise ValueError(f'selective_scan: {name} must have shape {shape}; '
                             f'got {tuple(t.shape)}')
    y, last_state = routed_scan(delta_softplus=delta_softplus, **selective_scan_routes(
        u, delta, A, B5[:, 0], C5[:, 0], D=D, z=z, delta_bias=delta_bias, reverse=reverse))
    return (y, last_state[:, 0]) if return_last_state else y


def _grouped(name, t, batch, dim, n_state, length):
    """(batch, N, L) or (batch, G, N, L) -> a (batch, 1, G, N, L) view."""
    if t.dim() == 3:
        t = t.unsqueeze(1)
    if t.dim() != 4 or t.shape[0] != batch or t.shape[2:] != (n_state, length):
        raise ValueError(f'selective_scan: {name} must be (batch, N, L) or (batch, G, N, L) '
                         f'with batch={batch}, N={n_state}, L={length}; got {tuple(t.shape)}')
    if dim % t.shape[1]:
        raise ValueError(f'selective_scan: the channel count D={dim} must be a multiple of the '
                         f'number of groups G={t.shape[1]} of {name}')
    return t.unsqueeze(1)

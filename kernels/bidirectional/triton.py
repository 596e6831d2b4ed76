"""Triton bidirectional selective scan (Vim's bimamba-v2 core), forward and backward.

Route 0 scans [:, 0] forward in time and route 1 scans [:, 1] backward in time, in one
launch of the shared kernels (:mod:`mlla_kernels.triton_utils`); the backward route reads
and writes in the original token order, so nothing is flipped.
"""
from ..routes import bidirectional_routes
from ..triton_utils import routed_scan


def bidirectional_selective_scan_triton(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                                        delta_softplus=True):
    """See :func:`mlla_kernels.bidirectional_selective_scan` for shapes.

    Returns y_fwd + y_bwd: (batch, Di, L) in u's dtype, each direction gated by silu(z).
    """
    if u.dim() != 4 or u.shape[1] != 2 or delta.shape != u.shape:
        raise ValueError(f'bidirectional_selective_scan: u and delta must both be '
                         f'(batch, 2, Di, L); got {tuple(u.shape)} and {tuple(delta.shape)}')
    batch, _, dim, length = u.shape
    if A.dim() != 3 or A.shape[:2] != (2, dim):
        raise ValueError(f'bidirectional_selective_scan: A must be (2, Di, N) = (2, {dim}, N); '
                         f'got {tuple(A.shape)}')
    n_state = A.shape[2]
    expected = {'B': (B, (batch, 2, n_state, length)), 'C': (C, (batch, 2, n_state, length)),
                'D': (D, (2, dim)), 'delta_bias': (delta_bias, (2, dim)),
                'z': (z, (batch, dim, length))}
    for name, (t, shape) in expected.items():
        if t is not None and tuple(t.shape) != shape:
            raise ValueError(f'bidirectional_selective_scan: {name} must have shape {shape}; '
                             f'got {tuple(t.shape)}')
    y, _ = routed_scan(delta_softplus=delta_softplus, **bidirectional_routes(
        u, delta, A, B, C, D=D, z=z, delta_bias=delta_bias))
    return y

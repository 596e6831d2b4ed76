"""The routed scan on ``meta`` tensors: outputs of the right shapes, dtypes and layout, no data.

For shape inference (tracing, FLOP counting): every operation maps onto this backend through
:mod:`mlla_kernels.routes` like onto the numba and Triton ones. Through the operator
(:mod:`mlla_kernels.library`) a meta tensor never reaches this module: the operator's fake
implementation answers, with the shapes and layouts of the real engines; :func:`routed_scan`
serves direct calls. Nothing is computed, so nothing is saved for a backward.
"""
import torch


def routed_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                order=None, merge=True):
    """See :mod:`mlla_kernels.routes` for the layout. Returns (y in u's dtype:
    (batch, DIM, L) merged, else (batch, K, DIM, L); last_state (batch, K, DIM, N) in the
    compute dtype, float32 or float64)."""
    batch, n_routes, dim, length = delta.shape
    compute = torch.float64 if u.dtype == torch.float64 else torch.float32
    y_shape = (batch, dim, length) if merge else (batch, n_routes, dim, length)
    y = torch.empty(y_shape, dtype=u.dtype, device=u.device)
    last = torch.empty(batch, n_routes, dim, A.shape[-1], dtype=compute, device=u.device)
    return y, last


def saved_shapes(batch, n_routes, dim, length, n_state, compute):
    """Nothing is kept for a backward."""
    return []

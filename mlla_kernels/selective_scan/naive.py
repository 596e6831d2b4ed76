"""Reference selective scan: the sequential recurrence, written to be read.

h_t = exp(delta_t * A) * h_{t-1} + delta_t * B_t * u_t
y_t = <C_t, h_t> + D * u_t,   out = y * silu(z) if z is given.

Runs in float32 (or float64 when the inputs are float64); the oracle for tests.
"""
from typing import Optional

import torch
import torch.nn.functional as F


def selective_scan_naive(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor,
                         B: torch.Tensor, C: torch.Tensor, D: Optional[torch.Tensor] = None,
                         z: Optional[torch.Tensor] = None,
                         delta_bias: Optional[torch.Tensor] = None,
                         delta_softplus: bool = False, return_last_state: bool = False,
                         reverse: bool = False):
    """See :func:`mlla_kernels.selective_scan` for shapes.

    ``reverse=True`` scans from t = L-1 down to 0 (used by the bidirectional op).
    """
    dtype_in = u.dtype
    compute = torch.float64 if u.dtype == torch.float64 else torch.float32
    u, delta, A, B, C = (t.to(compute) for t in (u, delta, A, B, C))
    if delta_bias is not None:
        delta = delta + delta_bias.to(compute)[None, :, None]
    if delta_softplus:
        delta = F.softplus(delta)
    batch, dim, length = u.shape
    n_state = A.shape[1]
    if B.dim() == 3:
        B = B.unsqueeze(1)
    if C.dim() == 3:
        C = C.unsqueeze(1)
    groups = B.shape[1]
    # (batch, G, N, L) -> (batch, D, N, L): each group serves dim // groups channels
    B = B.repeat_interleave(dim // groups, dim=1)
    C = C.repeat_interleave(dim // groups, dim=1)
    state = u.new_zeros(batch, dim, n_state)
    ys = [None] * length
    steps = range(length - 1, -1, -1) if reverse else range(length)
    for t in steps:
        decay = torch.exp(delta[:, :, t, None] * A)                     # (batch, D, N)
        state = decay * state + delta[:, :, t, None] * B[:, :, :, t] * u[:, :, t, None]
        ys[t] = (state * C[:, :, :, t]).sum(-1)                          # (batch, D)
    y = torch.stack(ys, dim=-1) if length else u.new_zeros(batch, dim, 0)
    if D is not None:
        y = y + D.to(compute)[None, :, None] * u
    if z is not None:
        y = y * F.silu(z.to(compute))
    y = y.to(dtype_in)
    return (y, state) if return_last_state else y

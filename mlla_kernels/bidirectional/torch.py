"""Vim's bidirectional scan in PyTorch: both directions as two channel groups of one scan.

The backward direction runs on time-reversed copies (flip), so one chunked forward scan over
2*Di channels does both; its output is flipped back and the shared skip/gate applied once:
y = (y_fwd + flip(y_bwd) + D_f u_f + D_b u_b) * silu(z), which equals the sum of the two
gated scans because the gate is the same elementwise factor for both.
"""
import torch
import torch.nn.functional as F

from ..selective_scan.torch import selective_scan_torch


def bidirectional_selective_scan_torch(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                                       delta_softplus=True, **plan):
    """See :func:`mlla_kernels.bidirectional_selective_scan`; ``plan`` goes to the scan."""
    dtype_in = u.dtype
    compute = torch.float64 if dtype_in == torch.float64 else torch.float32
    batch, _, dim, length = u.shape
    u = u.to(compute)
    us = torch.cat([u[:, 0], u[:, 1].flip(-1)], dim=1)                       # (b, 2*Di, L)
    deltas = torch.cat([delta[:, 0], delta[:, 1].flip(-1)], dim=1)
    Bs = torch.stack([B[:, 0], B[:, 1].flip(-1)], dim=1)                      # (b, 2, N, L)
    Cs = torch.stack([C[:, 0], C[:, 1].flip(-1)], dim=1)
    ys = selective_scan_torch(
        us, deltas, A.reshape(2 * dim, -1), Bs, Cs,
        delta_bias=None if delta_bias is None else delta_bias.reshape(2 * dim),
        delta_softplus=delta_softplus, **plan)
    y = ys[:, :dim] + ys[:, dim:].flip(-1)
    if D is not None:
        D = D.to(compute)
        y = y + D[0, :, None] * u[:, 0] + D[1, :, None] * u[:, 1]
    if z is not None:
        y = y * F.silu(z.to(compute))
    return y.to(dtype_in)

"""The second half of a transformer MLP, ``fc2(GELU(h))``, keeping ``h`` only for backward.

PyTorch's autograd keeps both ``h`` (for GELU's backward) and ``GELU(h)`` (for fc2's weight
gradient): 8 x C floats per token in an MLP of ratio 4, ~40 % of what an MLLA block keeps for
its backward. :func:`gelu_linear` keeps ``h`` alone and computes ``GELU(h)`` again in the
backward: one elementwise pass (~0.5 % of an MLLA-T training step on a CPU) for ~20 % less
activation memory (docs/speed.md). Forward values are PyTorch's own ops, bit for bit; the
gradients are the same formulas (tests/test_models/test_gelu_linear.py).
"""
from typing import Optional

import torch
import torch.nn.functional as F


class _GeluLinear(torch.autograd.Function):

    @staticmethod
    def forward(ctx, h, weight, bias):
        device = h.device.type
        # the backward recomputes GELU(h) under the forward's autocast state, so it is the very
        # tensor the forward multiplied
        ctx.autocast = (torch.is_autocast_enabled(device), torch.get_autocast_dtype(device))
        ctx.bias_dtype = None if bias is None else bias.dtype
        ctx.save_for_backward(h, weight)
        return F.linear(F.gelu(h), weight, bias)

    @staticmethod
    def backward(ctx, dy):
        h, weight = ctx.saved_tensors
        enabled, dtype = ctx.autocast
        with torch.autocast(h.device.type, dtype=dtype, enabled=enabled):
            act = F.gelu(h)
        compute = dy.dtype               # the forward's matmul dtype (autocast's, or the input's)
        dy2 = dy.reshape(-1, dy.shape[-1])
        dh = dweight = dbias = None
        if ctx.needs_input_grad[0]:
            dact = (dy2 @ weight.to(compute)).view(act.shape)
            dh = torch.ops.aten.gelu_backward(dact.to(act.dtype), h)
        if ctx.needs_input_grad[1]:
            dweight = (dy2.t() @ act.reshape(-1, act.shape[-1]).to(compute)).to(weight.dtype)
        if ctx.needs_input_grad[2]:
            dbias = dy2.sum(0).to(ctx.bias_dtype)
        return dh, dweight, dbias


def gelu_linear(h: torch.Tensor, weight: torch.Tensor,
                bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``F.linear(F.gelu(h), weight, bias)`` (exact erf GELU; features last) that saves only
    ``h`` for the backward. Without autograd (inference, export) it is those two ops."""
    if torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad or
                                    (bias is not None and bias.requires_grad)):
        return _GeluLinear.apply(h, weight, bias)
    return F.linear(F.gelu(h), weight, bias)

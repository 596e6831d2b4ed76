"""Linear layers that keep less for the backward: what feeds them is computed again there.

PyTorch's autograd keeps every op's input. Around a transformer's linear layers that means two
copies of most activations: ``LN(x)`` beside ``x`` (the LayerNorm keeps x, the linear layers it
feeds keep LN(x)), and ``GELU(h)`` beside ``h`` in the MLP (8 x C floats per token at ratio 4).
Here the cheap elementwise op is recomputed in the backward instead:

- :func:`gelu_linear`: ``fc2(GELU(h))`` keeping ``h``;
- :func:`norm_linear`: ``LN(x)`` followed by one or more linear layers, keeping ``x``.

One elementwise pass more per backward (~1 % of an MLLA-T training step on a CPU) for ~15-20 %
less activation memory (docs/speed.md). Forward values are those of the plain ops (GELU,
LayerNorm and :func:`.linear.linear`: ``F.linear``, on oneDNN in CPU float32), bit for bit; the
gradients are the same formulas (tests/test_models/test_recompute_linear.py). Both recompute in
the dtype the forward ran the op in (autocast may have run it in float32), so mixed precision
sees the very tensors the forward multiplied.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .linear import linear, linear_grads


class _GeluLinear(torch.autograd.Function):

    @staticmethod
    def forward(ctx, h, weight, bias):
        act = F.gelu(h)
        ctx.act_dtype = act.dtype   # autocast may run GELU in float32
        ctx.bias_dtype = None if bias is None else bias.dtype
        ctx.save_for_backward(h, weight)
        return linear(act, weight, bias)

    @staticmethod
    def backward(ctx, dy):
        h, weight = ctx.saved_tensors
        act = F.gelu(h.to(ctx.act_dtype))   # the very tensor the forward multiplied
        needs = ctx.needs_input_grad
        dact, dweight, dbias = linear_grads(dy, act, weight, ctx.bias_dtype, needs)
        dh = None
        if dact is not None:
            dh = torch.ops.aten.gelu_backward(dact.to(act.dtype), h.to(act.dtype)).to(h.dtype)
        return dh, dweight, dbias


def gelu_linear(h: torch.Tensor, weight: torch.Tensor,
                bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``F.linear(F.gelu(h), weight, bias)`` (exact erf GELU; features last) that saves only
    ``h`` for the backward. Without autograd (inference, export) it is those two ops."""
    if (torch.is_grad_enabled() and not torch.jit.is_tracing() and
            (h.requires_grad or weight.requires_grad or
             (bias is not None and bias.requires_grad))):
        return _GeluLinear.apply(h, weight, bias)
    return linear(F.gelu(h), weight, bias)


class _NormLinear(torch.autograd.Function):
    """LN(x) then linear layers; inputs ``x, ln_weight, ln_bias, eps, W1, b1, W2, b2, ...``."""

    @staticmethod
    def forward(ctx, x, ln_weight, ln_bias, eps, *linears):
        u = F.layer_norm(x, x.shape[-1:], ln_weight, ln_bias, eps)
        ctx.eps, ctx.norm_dtype = eps, u.dtype   # autocast may run the norm in float32
        ctx.bias_dtypes = [None if b is None else b.dtype for b in linears[1::2]]
        ctx.save_for_backward(x, ln_weight, ln_bias, *linears[0::2])
        return tuple(linear(u, w, b) for w, b in zip(linears[0::2], linears[1::2]))

    @staticmethod
    def backward(ctx, *douts):
        x, ln_weight, ln_bias, *weights = ctx.saved_tensors
        needs = ctx.needs_input_grad
        # the forward's norm again (the kernel F.layer_norm ran, in the dtype it ran in)
        cast = [None if t is None else t.to(ctx.norm_dtype) for t in (x, ln_weight, ln_bias)]
        u, mean, rstd = torch.native_layer_norm(cast[0], x.shape[-1:], cast[1], cast[2],
                                                ctx.eps)
        du, param_grads = None, []
        for i, (dy, weight) in enumerate(zip(douts, weights)):
            if dy is None:
                param_grads += [None, None]
                continue
            wanted = (any(needs[:3]), needs[4 + 2 * i], needs[5 + 2 * i])
            dinp, dweight, dbias = linear_grads(dy, u, weight, ctx.bias_dtypes[i], wanted)
            if dinp is not None:
                du = dinp.to(u.dtype) if du is None else du + dinp.to(u.dtype)
            param_grads += [dweight, dbias]
        dx = dln_weight = dln_bias = None
        if du is not None:
            mask = [needs[0], needs[1] and ln_weight is not None,
                    needs[2] and ln_bias is not None]
            dx, dln_weight, dln_bias = torch.ops.aten.native_layer_norm_backward(
                du, cast[0], x.shape[-1:], mean, rstd, cast[1], cast[2], mask)
            dx = None if dx is None else dx.to(x.dtype)
            dln_weight = None if dln_weight is None else dln_weight.to(ln_weight.dtype)
            dln_bias = None if dln_bias is None else dln_bias.to(ln_bias.dtype)
        return (dx, dln_weight, dln_bias, None, *param_grads)


def norm_linear(x: torch.Tensor, norm: nn.LayerNorm, *linears: nn.Linear
                ) -> Tuple[torch.Tensor, ...]:
    """``tuple(linear(norm(x)) for linear in linears)`` (a LayerNorm over the last dim) that
    keeps only ``x`` for the backward: ``norm(x)`` is computed again there. Without autograd
    (inference, export) it is those ops."""
    if len(norm.normalized_shape) != 1:
        raise ValueError(f'norm_linear: a LayerNorm over the last dim, got {norm}')
    params = [p for m in (norm, *linears) for p in m.parameters()]
    if (torch.is_grad_enabled() and not torch.jit.is_tracing() and
            (x.requires_grad or any(p.requires_grad for p in params))):
        flat = [t for layer in linears for t in (layer.weight, layer.bias)]
        return _NormLinear.apply(x, norm.weight, norm.bias, norm.eps, *flat)
    u = norm(x)
    return tuple(layer(u) for layer in linears)

"""Depthwise convolution on channels-last maps on the CPU: fused numba kernels.

x (batch, H, W, C), K kernels (K, C, kh, kw) each with its own (top, left) zero padding, output
(batch, K, H, W, C) of the input's size: ``out = act(bias + sum_taps w * x_shifted) (+ x)``.

**Forward**: a program owns one (image, kernel, range of pixels) and, per pixel, adds the taps
with the channels as vector lanes (channels are innermost in memory), then applies the SiLU and
the residual and stores the pixel once -- no padded copy, no (batch, C, H, W) transpose, no
separate activation pass.

**Backward** (two passes, the forward recomputed where the activation needs it):

1. per (image, kernel, pixel range): g = dout * act'(pre) (pre recomputed from x), the bias
   and weight gradients of the range (partial sums per program, added afterwards in a fixed
   order, so they do not depend on the thread count); g is stored only when there is an
   activation (else it is dout itself);
2. per (image, pixel range): dx = sum over kernels and taps of w * g at the mirrored
   positions (+ dout for the residual).

Computation in float32 for fp16/bf16/fp32 inputs (float64 for float64, with libm math).
Programs run on ``torch.get_num_threads()`` threads (:func:`mlla_kernels.routed_scan.numba._run`).
"""
from typing import NamedTuple

import numpy as np
import torch

from ..numba_common import add_taps, add_weight_taps, cpu_compute_dtype, tile_bounds
from ..routed_scan.numba import _run
from ..routed_scan.numba_math import ONE, jit, sigmoid
from . import kernel_paddings

#: pixel ranges per (image, kernel): programs for the threads, and the partial sums of the
#: weight gradient (a fixed count, so the sums are the same for any thread count)
TILES = 16


class Conv(NamedTuple):
    x: np.ndarray        # (batch, 1, H, W, C)
    w: np.ndarray        # (K, kh, kw, C)
    flipped: np.ndarray  # (K, kh, kw, C): w flipped along both axes (the input gradient's)
    bias: np.ndarray     # (K, C)
    pads: np.ndarray     # (K, 2) int64: (top, left)
    tiles: int
    silu: bool
    residual: bool


class ConvGrads(NamedTuple):
    dout: np.ndarray     # (batch, K, H, W, C)
    g: np.ndarray        # (batch, K, H, W, C): dout * act'(pre); dout itself without act
    dx: np.ndarray       # (batch, H, W, C)
    dw: np.ndarray       # (batch * K * tiles, kh, kw, C) partial sums
    db: np.ndarray       # (batch * K * tiles, C)


@jit(inline=True)
def _pre(conv, b, k, h, w, acc):
    """acc = bias + the taps of kernel k at pixel (h, w)."""
    for c in range(acc.shape[0]):
        acc[c] = conv.bias[k, c]
    add_taps(acc, conv.x[b, 0], conv.w[k], h, w, conv.pads[k, 0], conv.pads[k, 1])


@jit()
def _forward_programs(first, step, n_programs, conv, out):
    """Programs first, first + step, ...: one (image, kernel, pixel range) each."""
    x = conv.x
    height, width, channels = x.shape[2], x.shape[3], x.shape[4]
    n_kernels = conv.w.shape[0]
    acc = np.empty(channels, x.dtype)
    for p in range(first, n_programs, step):
        b = p // (n_kernels * conv.tiles)
        k = (p // conv.tiles) % n_kernels
        start, stop = tile_bounds(height * width, conv.tiles, p % conv.tiles)
        for q in range(start, stop):
            h = q // width
            w = q % width
            _pre(conv, b, k, h, w, acc)
            if conv.silu:
                for c in range(channels):
                    v = acc[c]
                    acc[c] = v * sigmoid(v)
            if conv.residual:
                for c in range(channels):
                    acc[c] += x[b, 0, h, w, c]
            for c in range(channels):
                out[b, k, h, w, c] = acc[c]


@jit()
def _weight_grad_programs(first, step, n_programs, conv, grads):
    """Pass 1, per (image, kernel, pixel range): g = dout * act'(pre), and the range's
    partial sums of the bias and weight gradients."""
    x = conv.x
    height, width, channels = x.shape[2], x.shape[3], x.shape[4]
    n_kernels = conv.w.shape[0]
    acc = np.empty(channels, x.dtype)
    for p in range(first, n_programs, step):
        b = p // (n_kernels * conv.tiles)
        k = (p // conv.tiles) % n_kernels
        top, left = conv.pads[k, 0], conv.pads[k, 1]
        dw, db = grads.dw[p], grads.db[p]
        dw[:] = 0
        db[:] = 0
        start, stop = tile_bounds(height * width, conv.tiles, p % conv.tiles)
        for q in range(start, stop):
            h = q // width
            w = q % width
            if conv.silu:
                _pre(conv, b, k, h, w, acc)
                for c in range(channels):
                    v = acc[c]
                    s = sigmoid(v)
                    acc[c] = grads.dout[b, k, h, w, c] * (s * (ONE + v * (ONE - s)))
                for c in range(channels):
                    grads.g[b, k, h, w, c] = acc[c]
            else:
                for c in range(channels):
                    acc[c] = grads.dout[b, k, h, w, c]
            for c in range(channels):
                db[c] += acc[c]
            add_weight_taps(dw, x[b, 0], acc, h, w, top, left)


@jit()
def _input_grad_programs(first, step, n_programs, conv, grads):
    """Pass 2, per (image, pixel range): dx = sum over kernels of g correlated with the
    flipped kernel, mirrored padding (+ dout for the residual)."""
    x = conv.x
    height, width, channels = x.shape[2], x.shape[3], x.shape[4]
    n_kernels, kh, kw = conv.w.shape[0], conv.w.shape[1], conv.w.shape[2]
    acc = np.empty(channels, x.dtype)
    for p in range(first, n_programs, step):
        b = p // conv.tiles
        start, stop = tile_bounds(height * width, conv.tiles, p % conv.tiles)
        for q in range(start, stop):
            h = q // width
            w = q % width
            if conv.residual:
                for c in range(channels):
                    acc[c] = grads.dout[b, 0, h, w, c]
            else:
                for c in range(channels):
                    acc[c] = 0
            for k in range(n_kernels):
                add_taps(acc, grads.g[b, k], conv.flipped[k], h, w, kh - 1 - conv.pads[k, 0],
                         kw - 1 - conv.pads[k, 1])
            for c in range(channels):
                grads.dx[b, h, w, c] = acc[c]


# ----------------------------------------------------------------------------------------
# torch <-> numba
# ----------------------------------------------------------------------------------------

def _conv(x, kernels, biases, pads, activation, residual):
    """The Conv tuple of (compute-dtype, contiguous) tensors."""
    n_kernels, channels = kernels.shape[:2]
    bias = (torch.zeros(n_kernels, channels, dtype=x.dtype) if biases is None else biases)
    taps = kernels.permute(0, 2, 3, 1)
    return Conv(x.unsqueeze(1).numpy(), taps.contiguous().numpy(),
                taps.flip(1, 2).contiguous().numpy(), bias.contiguous().numpy(),
                np.asarray(pads, dtype=np.int64).reshape(-1, 2),
                min(TILES, x.shape[1] * x.shape[2]), activation == 'silu', bool(residual))


class DepthwiseConvNumba(torch.autograd.Function):
    """forward(x, kernels (K, C, kh, kw), biases (K, C) or None, pads, activation, residual)
    -> (batch, K, H, W, C), all in the compute dtype, x contiguous channels-last."""

    @staticmethod
    def forward(ctx, x, kernels, biases, pads, activation, residual):
        conv = _conv(x, kernels, biases, pads, activation, residual)
        batch, height, width, channels = x.shape
        out = torch.empty(batch, kernels.shape[0], height, width, channels, dtype=x.dtype)
        _run(_forward_programs, batch * kernels.shape[0] * conv.tiles, conv, out.numpy())
        ctx.save_for_backward(x, kernels, biases)
        ctx.options = (pads, activation, residual)
        return out

    @staticmethod
    def backward(ctx, dout):
        x, kernels, biases = ctx.saved_tensors
        pads, activation, residual = ctx.options
        conv = _conv(x, kernels, biases, pads, activation, residual)
        batch, n_kernels = x.shape[0], kernels.shape[0]
        dout = dout.contiguous()
        g = torch.empty_like(dout) if conv.silu else dout
        dx = torch.empty_like(x)
        programs = batch * n_kernels * conv.tiles
        dw = torch.empty(programs, kernels.shape[2], kernels.shape[3], kernels.shape[1],
                         dtype=x.dtype)
        db = torch.empty(programs, kernels.shape[1], dtype=x.dtype)
        grads = ConvGrads(dout.numpy(), g.numpy(), dx.numpy(), dw.numpy(), db.numpy())
        _run(_weight_grad_programs, programs, conv, grads)
        _run(_input_grad_programs, batch * conv.tiles, conv, grads)
        # fixed-order sums of the per-program partials
        dw = dw.view(batch, n_kernels, conv.tiles, *dw.shape[1:]).sum((0, 2)).permute(0, 3, 1, 2)
        db = db.view(batch, n_kernels, conv.tiles, -1).sum((0, 2))
        return (dx, dw if ctx.needs_input_grad[1] else None,
                db if biases is not None and ctx.needs_input_grad[2] else None,
                None, None, None)


def depthwise_conv2d_numba(x, weight, bias=None, padding=None, activation=None,
                           residual=False):
    """:func:`mlla_kernels.depthwise_conv2d` on the fused CPU kernels. fp16/bf16 inputs are
    computed in float32 (one cast each) and the output cast back."""
    compute = cpu_compute_dtype(x)
    single = weight.dim() == 3
    kernels = weight.unsqueeze(0) if single else weight
    biases = None if bias is None else (bias.unsqueeze(0) if single else bias)
    pads = kernel_paddings(padding, kernels.shape[0], kernels.shape[2], kernels.shape[3])
    out = DepthwiseConvNumba.apply(
        x.to(compute).contiguous(), kernels.to(compute),
        None if biases is None else biases.to(compute), pads, activation, residual)
    out = out.to(x.dtype)
    return out[:, 0] if single else out

"""DCNv4's core op as fused numba CPU kernels, forward and backward (the ``'numba'`` backend).

Same semantics as :func:`~mlla_mm.models.layers.dcnv4.dcnv4_naive` (see that module's
docstring). Channels-last throughout: value (N, H, W, C), offset_mask (N, Ho, Wo, P) and
the output (N, Ho, Wo, C) are read and written with the channels innermost, so the ``Cg``
channels of a group that share one sampling point are one contiguous vector per corner. The
SS2D of HRVMamba hands over channels-last maps, for which the permutes here are free.

* forward: one program per output row ``(n, ho)``; per pixel, group and point it computes
  the point, its 4 bilinear weights times the raw mask, and accumulates the corners' channel
  vectors. Nothing of size (N, Ho, Wo, C, k*k) is ever stored;
* backward, two passes that recompute the points: (a) per output row, the offset and mask
  gradients (per point: sums over the group's channels of the output gradient times the
  sample, or times the sample's x/y slope); (b) per (n, group, block of channels), the value
  gradient, scattered to the 4 corners -- each program owns its channels, so nothing races.

Forward and backward are registered operators (``torch.ops.mlla_mm.dcnv4_numba`` and
``dcnv4_numba_backward``, see below). Programs run on torch's thread count through the scan engine's thread pool
(:func:`mlla_kernels.routed_scan.numba._run`), compiled with its options
(:func:`mlla_kernels.routed_scan.numba_math.jit`: fastmath, no GIL, disk-cached).
float32 and float64 are computed as they are; fp16/bf16 are computed in float32.
"""
import math
from typing import Tuple

import numpy as np
import torch

from mlla_kernels.routed_scan.numba import _run
from mlla_kernels.routed_scan.numba_math import jit


@jit()
def _point(ho, wo, i, j, dx, dy, stride, origin, dilation, scale):
    """Sampling point (x, y) of kernel column i, row j at output pixel (ho, wo)."""
    x = wo * stride + origin + (i * dilation + dx) * scale
    y = ho * stride + origin + (j * dilation + dy) * scale
    return x, y


@jit()
def _corners(x, y, mask, height, width, weights, rows, cols):
    """The 4 bilinear corners of (x, y): weights (times the mask; 0 for a corner outside the
    map), rows and columns, in the order (y0, x0), (y0, x1), (y1, x0), (y1, x1)."""
    x0 = math.floor(x)
    y0 = math.floor(y)
    lx = x - x0
    ly = y - y0
    ix = int(x0)
    iy = int(y0)
    for q in range(4):
        yy = iy + q // 2
        xx = ix + q % 2
        wy = ly if q // 2 else 1.0 - ly
        wx = lx if q % 2 else 1.0 - lx
        inside = yy >= 0 and yy < height and xx >= 0 and xx < width
        weights[q] = mask * wy * wx if inside else 0.0
        rows[q] = yy if inside else 0
        cols[q] = xx if inside else 0


@jit()
def _forward_kernel(start, step, n_programs, value, om, out, group, kernel, stride, pad,
                    dilation, scale):
    height, width, channels = value.shape[1], value.shape[2], value.shape[3]
    out_h, out_w = out.shape[1], out.shape[2]
    cg = channels // group
    points = kernel * kernel
    c0 = (dilation * (kernel - 1)) // 2
    origin = c0 - pad - c0 * scale
    weights = np.zeros(4, value.dtype)
    rows = np.zeros(4, np.int64)
    cols = np.zeros(4, np.int64)
    for prog in range(start, n_programs, step):
        n = prog // out_h
        ho = prog % out_h
        for wo in range(out_w):
            acc = out[n, ho, wo]
            for g in range(group):
                base = g * 3 * points
                cb = g * cg
                for i in range(kernel):
                    for j in range(kernel):
                        p = i * kernel + j
                        x, y = _point(ho, wo, i, j, om[n, ho, wo, base + 2 * p],
                                      om[n, ho, wo, base + 2 * p + 1], stride, origin, dilation,
                                      scale)
                        if not (x > -1.0 and y > -1.0 and x < width and y < height):
                            continue
                        _corners(x, y, om[n, ho, wo, base + 2 * points + p], height, width,
                                 weights, rows, cols)
                        for q in range(4):
                            if weights[q] != 0:
                                w = weights[q]
                                src = value[n, rows[q], cols[q]]
                                for c in range(cb, cb + cg):
                                    acc[c] += w * src[c]


@jit()
def _offset_grad_kernel(start, step, n_programs, value, om, grad_out, grad_om, group, kernel,
                        stride, pad, dilation, scale):
    height, width, channels = value.shape[1], value.shape[2], value.shape[3]
    out_h, out_w = grad_out.shape[1], grad_out.shape[2]
    cg = channels // group
    points = kernel * kernel
    c0 = (dilation * (kernel - 1)) // 2
    origin = c0 - pad - c0 * scale
    zero = np.zeros(1, value.dtype)[0]
    for prog in range(start, n_programs, step):
        n = prog // out_h
        ho = prog % out_h
        for wo in range(out_w):
            go = grad_out[n, ho, wo]
            for g in range(group):
                base = g * 3 * points
                cb = g * cg
                for i in range(kernel):
                    for j in range(kernel):
                        p = i * kernel + j
                        x, y = _point(ho, wo, i, j, om[n, ho, wo, base + 2 * p],
                                      om[n, ho, wo, base + 2 * p + 1], stride, origin, dilation,
                                      scale)
                        if not (x > -1.0 and y > -1.0 and x < width and y < height):
                            continue
                        m = om[n, ho, wo, base + 2 * points + p]
                        x0 = math.floor(x)
                        y0 = math.floor(y)
                        lx = x - x0
                        ly = y - y0
                        ix = int(x0)
                        iy = int(y0)
                        # sums over the group's channels of go * corner value, per corner
                        s00 = zero
                        s01 = zero
                        s10 = zero
                        s11 = zero
                        top = iy >= 0
                        bottom = iy + 1 < height
                        left = ix >= 0
                        right = ix + 1 < width
                        if top and left:
                            src = value[n, iy, ix]
                            for c in range(cg):
                                s00 += go[cb + c] * src[cb + c]
                        if top and right:
                            src = value[n, iy, ix + 1]
                            for c in range(cg):
                                s01 += go[cb + c] * src[cb + c]
                        if bottom and left:
                            src = value[n, iy + 1, ix]
                            for c in range(cg):
                                s10 += go[cb + c] * src[cb + c]
                        if bottom and right:
                            src = value[n, iy + 1, ix + 1]
                            for c in range(cg):
                                s11 += go[cb + c] * src[cb + c]
                        sample = ((1.0 - ly) * ((1.0 - lx) * s00 + lx * s01)
                                  + ly * ((1.0 - lx) * s10 + lx * s11))
                        slope_x = (1.0 - ly) * (s01 - s00) + ly * (s11 - s10)
                        slope_y = (1.0 - lx) * (s10 - s00) + lx * (s11 - s01)
                        grad_om[n, ho, wo, base + 2 * p] = m * scale * slope_x
                        grad_om[n, ho, wo, base + 2 * p + 1] = m * scale * slope_y
                        grad_om[n, ho, wo, base + 2 * points + p] = sample


@jit()
def _value_grad_kernel(start, step, n_programs, om, grad_out, grad_value, group, kernel,
                       stride, pad, dilation, scale, block, blocks_per_group):
    height, width, channels = grad_value.shape[1], grad_value.shape[2], grad_value.shape[3]
    out_h, out_w = grad_out.shape[1], grad_out.shape[2]
    cg = channels // group
    points = kernel * kernel
    c0 = (dilation * (kernel - 1)) // 2
    origin = c0 - pad - c0 * scale
    weights = np.zeros(4, grad_value.dtype)
    rows = np.zeros(4, np.int64)
    cols = np.zeros(4, np.int64)
    for prog in range(start, n_programs, step):
        b = prog % blocks_per_group
        g = (prog // blocks_per_group) % group
        n = prog // (blocks_per_group * group)
        base = g * 3 * points
        c_start = g * cg + b * block
        c_stop = min(c_start + block, (g + 1) * cg)
        for ho in range(out_h):
            for wo in range(out_w):
                go = grad_out[n, ho, wo]
                for i in range(kernel):
                    for j in range(kernel):
                        p = i * kernel + j
                        x, y = _point(ho, wo, i, j, om[n, ho, wo, base + 2 * p],
                                      om[n, ho, wo, base + 2 * p + 1], stride, origin, dilation,
                                      scale)
                        if not (x > -1.0 and y > -1.0 and x < width and y < height):
                            continue
                        _corners(x, y, om[n, ho, wo, base + 2 * points + p], height, width,
                                 weights, rows, cols)
                        for q in range(4):
                            if weights[q] != 0:
                                w = weights[q]
                                dst = grad_value[n, rows[q], cols[q]]
                                for c in range(c_start, c_stop):
                                    dst[c] += w * go[c]


def _channels_last(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(N, C, H, W) -> contiguous (N, H, W, C) in ``dtype`` (free for channels-last memory)."""
    return t.detach().permute(0, 2, 3, 1).to(dtype).contiguous()


def _value_blocks(batch: int, group: int, cg: int):
    """(channels per program, programs per group) of the value-gradient pass: whole groups,
    unless that leaves torch's threads idle (then halves, down to 8 channels)."""
    threads = max(1, torch.get_num_threads())
    block = cg
    while batch * group * -(-cg // block) < threads and block > 8:
        block = max(8, block // 2)
    return block, -(-cg // block)


def _output_size(size, kernel_size, stride, pad, dilation):
    return (size + 2 * pad - dilation * (kernel_size - 1) - 1) // stride + 1


def _nchw_of_channels_last(batch, channels, height, width, like):
    """An NCHW-shaped tensor with channels-last memory: the layout the kernels write."""
    return like.new_empty((batch, height, width, channels)).permute(0, 3, 1, 2)


# The op is a registered PyTorch operator (``torch.ops.mlla_mm.dcnv4_numba``, forward and
# backward each an operator with a fake implementation, the formula registered with
# register_autograd), so torch.compile(fullgraph=True) and torch.export see one node -- as
# mlla_kernels.library does for the scans. Outputs are NCHW-shaped views of channels-last
# memory (what the kernels write), in the fake implementations too.
@torch.library.custom_op('mlla_mm::dcnv4_numba', mutates_args=(), device_types='cpu')
def dcnv4_numba_op(value: torch.Tensor, offset_mask: torch.Tensor, group: int,
                   kernel_size: int, stride: int, pad: int, dilation: int,
                   offset_scale: float) -> torch.Tensor:
    """DCNv4's core op on the numba kernels; value (N, C, H, W), offset_mask (N, P, Ho, Wo)."""
    compute = value.dtype if value.dtype in (torch.float32, torch.float64) else torch.float32
    v = _channels_last(value, compute)
    om = _channels_last(offset_mask, compute)
    batch, channels = value.shape[:2]
    out_h, out_w = om.shape[1:3]
    out = torch.zeros(batch, out_h, out_w, channels, dtype=compute)
    _run(_forward_kernel, batch * out_h, v.numpy(), om.numpy(), out.numpy(), group,
         kernel_size, stride, pad, dilation, float(offset_scale))
    return out.to(value.dtype).permute(0, 3, 1, 2)


@dcnv4_numba_op.register_fake
def _(value, offset_mask, group, kernel_size, stride, pad, dilation, offset_scale):
    batch, channels, height, width = value.shape
    return _nchw_of_channels_last(batch, channels,
                                  _output_size(height, kernel_size, stride, pad, dilation),
                                  _output_size(width, kernel_size, stride, pad, dilation), value)


@torch.library.custom_op('mlla_mm::dcnv4_numba_backward', mutates_args=(), device_types='cpu')
def dcnv4_numba_backward_op(grad_out: torch.Tensor, value: torch.Tensor,
                            offset_mask: torch.Tensor, group: int, kernel_size: int,
                            stride: int, pad: int, dilation: int, offset_scale: float,
                            value_grad: bool, offset_mask_grad: bool
                            ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Gradients of value and offset_mask (zeros for the one not asked for)."""
    compute = value.dtype if value.dtype in (torch.float32, torch.float64) else torch.float32
    v = _channels_last(value, compute)
    om = _channels_last(offset_mask, compute)
    go = _channels_last(grad_out, compute)
    batch, out_h = go.shape[:2]
    scale = float(offset_scale)
    grad_om = torch.zeros_like(om)        # the padding channels stay 0
    if offset_mask_grad:
        _run(_offset_grad_kernel, batch * out_h, v.numpy(), om.numpy(), go.numpy(),
             grad_om.numpy(), group, kernel_size, stride, pad, dilation, scale)
    grad_value = torch.zeros_like(v)
    if value_grad:
        block, blocks = _value_blocks(batch, group, v.shape[3] // group)
        _run(_value_grad_kernel, batch * group * blocks, om.numpy(), go.numpy(),
             grad_value.numpy(), group, kernel_size, stride, pad, dilation, scale, block,
             blocks)
    return (grad_value.to(value.dtype).permute(0, 3, 1, 2),
            grad_om.to(offset_mask.dtype).permute(0, 3, 1, 2))


@dcnv4_numba_backward_op.register_fake
def _(grad_out, value, offset_mask, group, kernel_size, stride, pad, dilation, offset_scale,
      value_grad, offset_mask_grad):
    return (_nchw_of_channels_last(*value.shape, value),
            _nchw_of_channels_last(*offset_mask.shape, offset_mask))


def _setup_context(ctx, inputs, output):
    value, offset_mask, *geometry = inputs
    ctx.save_for_backward(value, offset_mask)
    ctx.geometry = geometry


def _backward(ctx, grad_out):
    value, offset_mask = ctx.saved_tensors
    grad_value, grad_om = dcnv4_numba_backward_op(
        grad_out, value, offset_mask, *ctx.geometry, ctx.needs_input_grad[0],
        ctx.needs_input_grad[1])
    return (grad_value if ctx.needs_input_grad[0] else None,
            grad_om if ctx.needs_input_grad[1] else None, None, None, None, None, None, None)


dcnv4_numba_op.register_autograd(_backward, setup_context=_setup_context)


def dcnv4_numba(value, offset_mask, group, kernel_size, stride, pad, dilation, offset_scale,
                out_h, out_w):
    if value.is_cuda or offset_mask.is_cuda:
        raise ValueError("dcnv4: the 'numba' backend runs on CPU tensors; use 'grid_sample' "
                         "(or 'auto') for CUDA tensors")
    return dcnv4_numba_op(value, offset_mask, group, kernel_size, stride, pad, dilation,
                          float(offset_scale))

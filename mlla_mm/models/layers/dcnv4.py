"""DCNv4 in plain PyTorch: the deformable aggregation HRVMamba uses in place of SS2D's dwconv.

DCNv4 ("Efficient Deformable ConvNets", Xiong et al., CVPR 2024) ships only as a CUDA
extension (OpenGVLab's ``DCNv4`` package, vendored by zhanghao5201/HRVMamba). Its core op,
read from ``dcnv4_im2col_cuda.cuh``, is a *depthwise* deformable aggregation with no learned
kernel: for every output pixel and channel group ``g`` of ``Cg`` channels, ::

    out[n, g*Cg + c, h, w] = sum_p mask[n, g, p, h, w] * bilinear(value[n, g*Cg + c], y_p, x_p)

over the ``k*k`` sampling points ``p = i*k + j`` -- ``i`` runs over the kernel *columns* (x,
outer loop), ``j`` over the rows (y, inner) -- at ::

    x_p = c0 - pad + w*stride - c0*s + (i*dilation + dx_p) * s
    y_p = c0 - pad + h*stride - c0*s + (j*dilation + dy_p) * s,   c0 = dilation*(k-1) // 2

(``s`` = ``offset_scale``; with s = 1 simply ``w*stride - pad + i*dilation + dx_p``).
Coordinates are pixel indices (pixel centres at integers); a corner outside the map reads 0,
so a point with x <= -1, y <= -1, x >= W or y >= H contributes nothing. The mask is used
**raw** (no softmax, no sigmoid). ``offset_mask`` holds, per pixel, one slice of ``3*k*k``
values per group -- ``k*k`` (dx, dy) pairs, then ``k*k`` mask values -- padded at the end to a
multiple of 8 (the padding is ignored).

Four twins compute that op, each differentiable:

* :func:`dcnv4_naive` -- the reference: the formula above written out point by point and
  corner by corner, as the CUDA kernel does (slow; tests only);
* ``'numba'`` -- fused CPU kernels, forward and backward (:mod:`.dcnv4_numba`), channels-last,
  registered as the operator ``torch.ops.mlla_mm.dcnv4_numba`` (fake implementation and
  autograd registered: one node under ``torch.compile(fullgraph=True)`` and ``torch.export``);
* ``'grid_sample'`` -- ``F.grid_sample`` per point (bilinear, zero padding,
  ``align_corners=False`` maps pixel indices exactly), times the mask, summed;
* ``'torchvision'`` -- ``torchvision.ops.deform_conv2d`` with a ``ones`` depthwise kernel:
  its modulation mask is DCNv4's raw mask once the points are reordered (torchvision counts
  ``row*k + col`` and wants (dy, dx)); ``offset_scale != 1`` is folded into the offsets.

:class:`DCNv4` is the module around the op with upstream's parameter names
(``offset_mask``, ``offset_mask_dw``, ``value_proj``, ``output_proj``), so official
checkpoints load unchanged, in both layouts: with the value/output projections (the
module as coded) or without them (``with_pointwise=False``; what HRVMamba's published sizes
imply).
"""
import math
from typing import Optional

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn

from .ss2d import Linear2d

DCN_BACKENDS = ('auto', 'numba', 'grid_sample', 'torchvision', 'naive')


def _check(value: torch.Tensor, offset_mask: torch.Tensor, group: int, kernel_size: int,
           stride: int, pad: int, dilation: int) -> tuple:
    """Validate shapes; returns (Ho, Wo) of the output."""
    if value.dim() != 4 or offset_mask.dim() != 4:
        raise ValueError(f'dcnv4: value (N, C, H, W) and offset_mask (N, P, Ho, Wo) must be 4-D, '
                         f'got {tuple(value.shape)} and {tuple(offset_mask.shape)}')
    batch, channels, height, width = value.shape
    if group < 1 or channels % group:
        raise ValueError(f'dcnv4: {channels} channels do not split into {group} groups')
    out_h = (height + 2 * pad - dilation * (kernel_size - 1) - 1) // stride + 1
    out_w = (width + 2 * pad - dilation * (kernel_size - 1) - 1) // stride + 1
    need = group * 3 * kernel_size * kernel_size
    if (offset_mask.shape[0] != batch or offset_mask.shape[1] < need
            or tuple(offset_mask.shape[2:]) != (out_h, out_w)):
        raise ValueError(f'dcnv4: offset_mask must be (N={batch}, >={need}, {out_h}, {out_w}) '
                         f'for {group} groups of {kernel_size}x{kernel_size} points, got '
                         f'{tuple(offset_mask.shape)}')
    return out_h, out_w


def _split_offset_mask(offset_mask: torch.Tensor, group: int, points: int):
    """(N, P_pad, Ho, Wo) -> dx, dy, mask, each (N, G, K, Ho, Wo) views."""
    om = offset_mask[:, :group * 3 * points].unflatten(1, (group, 3 * points))
    offsets = om[:, :, :2 * points].unflatten(2, (points, 2))
    return offsets[:, :, :, 0], offsets[:, :, :, 1], om[:, :, 2 * points:]


def _base_points(kernel_size: int, dilation: int, offset_scale: float, like: torch.Tensor):
    """Kernel-point terms of x_p (over columns i) and y_p (over rows j), p = i*k + j, scaled."""
    idx = torch.arange(kernel_size, device=like.device, dtype=like.dtype)
    cols = idx.repeat_interleave(kernel_size)   # i = p // k
    rows = idx.repeat(kernel_size)              # j = p %  k
    return cols * dilation * offset_scale, rows * dilation * offset_scale


def _sample_coords(dx, dy, kernel_size, stride, pad, dilation, offset_scale, out_h, out_w):
    """Sampling coordinates x, y (N, G, K, Ho, Wo) in pixel units (CUDA kernel's formula)."""
    c0 = (dilation * (kernel_size - 1)) // 2
    origin = c0 - pad - c0 * offset_scale
    kx, ky = _base_points(kernel_size, dilation, offset_scale, dx)
    grid_w = torch.arange(out_w, device=dx.device, dtype=dx.dtype) * stride + origin
    grid_h = torch.arange(out_h, device=dx.device, dtype=dx.dtype) * stride + origin
    x = grid_w.view(1, 1, 1, 1, -1) + kx.view(1, 1, -1, 1, 1) + dx * offset_scale
    y = grid_h.view(1, 1, 1, -1, 1) + ky.view(1, 1, -1, 1, 1) + dy * offset_scale
    return x, y


def dcnv4_naive(value: torch.Tensor, offset_mask: torch.Tensor, group: int,
                kernel_size: int = 3, stride: int = 1, pad: int = 1, dilation: int = 1,
                offset_scale: float = 1.0) -> torch.Tensor:
    """Reference DCNv4 core op: point by point, corner by corner, as the CUDA kernel.

    Args:
        value (Tensor): (N, C, H, W) features sampled from.
        offset_mask (Tensor): (N, P_pad, Ho, Wo), per group ``k*k`` (dx, dy) pairs then
            ``k*k`` raw mask values; trailing channels beyond ``3*G*k*k`` are ignored.
        group (int): channel groups G (one offset/mask set per group).
        kernel_size, stride, pad, dilation (int): the kernel geometry.
        offset_scale (float): scale of the offsets (and of the kernel grid).

    Returns:
        Tensor: (N, C, Ho, Wo).
    """
    out_h, out_w = _check(value, offset_mask, group, kernel_size, stride, pad, dilation)
    batch, channels, height, width = value.shape
    cg = channels // group
    points = kernel_size * kernel_size
    dx, dy, mask = _split_offset_mask(offset_mask, group, points)
    xs, ys = _sample_coords(dx, dy, kernel_size, stride, pad, dilation, offset_scale,
                            out_h, out_w)
    flat = value.reshape(batch, group, cg, height * width)
    out = value.new_zeros(batch, group, cg, out_h, out_w)
    for p in range(points):
        x, y = xs[:, :, p], ys[:, :, p]                       # (N, G, Ho, Wo)
        inside = ((x > -1) & (y > -1) & (x < width) & (y < height)).to(value.dtype)
        x0, y0 = torch.floor(x), torch.floor(y)
        lx, ly = x - x0, y - y0
        for cx, cy, weight in ((x0, y0, (1 - lx) * (1 - ly)), (x0 + 1, y0, lx * (1 - ly)),
                               (x0, y0 + 1, (1 - lx) * ly), (x0 + 1, y0 + 1, lx * ly)):
            valid = (cx >= 0) & (cx < width) & (cy >= 0) & (cy < height)
            index = (cy.clamp(0, height - 1) * width + cx.clamp(0, width - 1)).long()
            corner = torch.gather(flat, 3, index.flatten(2).unsqueeze(2).expand(-1, -1, cg, -1))
            corner = corner.view(batch, group, cg, out_h, out_w)
            scale = weight * valid.to(value.dtype) * inside * mask[:, :, p]
            out = out + corner * scale.unsqueeze(2)
    return out.view(batch, channels, out_h, out_w)


def _dcnv4_grid_sample(value, offset_mask, group, kernel_size, stride, pad, dilation,
                       offset_scale, out_h, out_w):
    batch, channels, height, width = value.shape
    cg, points = channels // group, kernel_size * kernel_size
    dx, dy, mask = _split_offset_mask(offset_mask, group, points)
    x, y = _sample_coords(dx, dy, kernel_size, stride, pad, dilation, offset_scale, out_h, out_w)
    # pixel index -> [-1, 1] with align_corners=False (pixel centres at (2i+1)/size - 1)
    grid = torch.stack(((2 * x + 1) / width - 1, (2 * y + 1) / height - 1), dim=-1)
    grid = grid.flatten(0, 1).to(value.dtype)                  # (N*G, K, Ho, Wo, 2)
    mask = mask.flatten(0, 1).unsqueeze(1).to(value.dtype)     # (N*G, 1, K, Ho, Wo)
    value = value.reshape(batch * group, cg, height, width)
    # One grid_sample per point, accumulated: measured faster on CPU than one call over all
    # points followed by a reduction (an einsum there becomes a bmm of tiny matrices), and
    # it never holds all k*k samples at once.
    out = None
    for p in range(points):
        term = F.grid_sample(value, grid[:, p], mode='bilinear', padding_mode='zeros',
                             align_corners=False) * mask[:, :, p]
        out = term if out is None else out + term
    return out.view(batch, channels, out_h, out_w)


def _dcnv4_torchvision(value, offset_mask, group, kernel_size, stride, pad, dilation,
                       offset_scale, out_h, out_w):
    from torchvision.ops import deform_conv2d
    channels, points = value.shape[1], kernel_size * kernel_size
    dx, dy, mask = _split_offset_mask(offset_mask, group, points)
    # DCNv4 point p = col*k + row; torchvision's q = row*k + col: transpose the point grid.
    def to_tv(t):  # (N, G, K, Ho, Wo) -> same, points in torchvision's order
        return t.unflatten(2, (kernel_size, kernel_size)).transpose(2, 3).flatten(2, 3)
    dx, dy, mask = to_tv(dx), to_tv(dy), to_tv(mask)
    if offset_scale != 1.0:
        # torchvision samples at h*stride - pad + row*dil + off; DCNv4 at
        # c0 - pad + h*stride - c0*s + (row*dil + dy)*s: off = s*dy + (s-1)*(row*dil - c0).
        c0 = (dilation * (kernel_size - 1)) // 2
        kx, ky = _base_points(kernel_size, dilation, 1.0, value)
        kx, ky = to_tv(kx.view(1, 1, -1, 1, 1)), to_tv(ky.view(1, 1, -1, 1, 1))
        dx = offset_scale * dx + (offset_scale - 1) * (kx - c0)
        dy = offset_scale * dy + (offset_scale - 1) * (ky - c0)
    offset = torch.stack((dy, dx), dim=3).flatten(1, 3)        # (N, G*K*2, Ho, Wo)
    weight = value.new_ones(channels, 1, kernel_size, kernel_size)
    return deform_conv2d(value, offset.to(value.dtype), weight, stride=stride, padding=pad,
                         dilation=dilation, mask=mask.flatten(1, 2).to(value.dtype))


def dcnv4(value: torch.Tensor, offset_mask: torch.Tensor, group: int, kernel_size: int = 3,
          stride: int = 1, pad: int = 1, dilation: int = 1, offset_scale: float = 1.0,
          backend: str = 'auto') -> torch.Tensor:
    """DCNv4's core op (see the module docstring); arguments as :func:`dcnv4_naive`.

    Args:
        backend (str): 'auto' ('numba' for CPU tensors when numba is installed, else
            'grid_sample'), 'numba' (CPU only), 'grid_sample', 'torchvision' or 'naive'.
            On CPU, grid_sample is 1.5-5x faster forward and 5-10x faster forward + backward
            than torchvision's deform_conv2d, and numba faster again (docs/hrvmamba.md).
    """
    if backend not in DCN_BACKENDS:
        raise ValueError(f'dcnv4: backend must be one of {DCN_BACKENDS}, got {backend!r}')
    if backend == 'naive':
        return dcnv4_naive(value, offset_mask, group, kernel_size, stride, pad, dilation,
                           offset_scale)
    out_h, out_w = _check(value, offset_mask, group, kernel_size, stride, pad, dilation)
    if backend == 'auto':
        backend = 'numba' if not value.is_cuda and _has_numba() else 'grid_sample'
    if backend == 'numba':
        from .dcnv4_numba import dcnv4_numba
        return dcnv4_numba(value, offset_mask, group, kernel_size, stride, pad, dilation,
                           offset_scale, out_h, out_w)
    impl = _dcnv4_torchvision if backend == 'torchvision' else _dcnv4_grid_sample
    return impl(value, offset_mask, group, kernel_size, stride, pad, dilation, offset_scale,
                out_h, out_w)


def _has_numba() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


class DCNv4(BaseModule):
    """DCNv4 module with OpenGVLab's parameter names, channel-first (NCHW in and out).

    ``value = value_proj(x)`` (if ``with_pointwise``), ``offset_mask =
    offset_mask(offset_mask_dw(x))`` (the depthwise conv only if ``dw_kernel_size``),
    the deformable aggregation of :func:`dcnv4`, then ``output_proj`` (if
    ``with_pointwise``). The offsets/masks are computed from the module's input, not from
    ``value``. Stride 1, 'same' padding. Upstream's (N, H, W, C) input becomes NCHW here.

    Args:
        channels (int): channels C (in = out).
        group (int): groups G, one set of ``k*k`` offsets and masks each.
        kernel_size (int): k. Default: 3.
        dilation (int): kernel dilation. Default: 1.
        offset_scale (float): offset scale s. Default: 1.0.
        dw_kernel_size (int, optional): kernel of the depthwise conv (with bias) before
            ``offset_mask`` (``offset_mask_dw``); None: no conv. Default: None.
        with_pointwise (bool): build ``value_proj`` (Linear C->C, bias) and ``output_proj``
            (Linear C->C); upstream's ``without_pointwise`` negated. Default: True.
        output_bias (bool): ``output_proj`` has a bias. Default: True.
        backend (str): op backend, see :func:`dcnv4`. Default: 'auto'.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self, channels: int, group: int, kernel_size: int = 3, dilation: int = 1,
                 offset_scale: float = 1.0, dw_kernel_size: Optional[int] = None,
                 with_pointwise: bool = True, output_bias: bool = True,
                 backend: str = 'auto', init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if group < 1 or channels % group:
            raise ValueError(f'DCNv4: channels ({channels}) must be divisible by group ({group})')
        if kernel_size % 2 != 1:
            raise ValueError(f'DCNv4: kernel_size must be odd (same padding), got {kernel_size}')
        if backend not in DCN_BACKENDS:
            raise ValueError(f'DCNv4: backend must be one of {DCN_BACKENDS}, got {backend!r}')
        self.channels = channels
        self.group = group
        self.kernel_size = kernel_size
        self.dilation = dilation
        self.pad = dilation * (kernel_size - 1) // 2
        self.offset_scale = offset_scale
        self.dw_kernel_size = dw_kernel_size
        self.with_pointwise = with_pointwise
        self.backend = backend
        points = group * kernel_size * kernel_size
        if dw_kernel_size is not None:
            self.offset_mask_dw = nn.Conv2d(channels, channels, dw_kernel_size,
                                            padding=(dw_kernel_size - 1) // 2, groups=channels)
        # upstream pads the 3*G*k*k offset/mask channels to a multiple of 8; Linear2d keeps
        # nn.Linear's 2-D weights (the official key shapes)
        self.offset_mask = Linear2d(channels, int(math.ceil(points * 3 / 8) * 8))
        if with_pointwise:
            self.value_proj = Linear2d(channels, channels)
            self.output_proj = Linear2d(channels, channels, bias=output_bias)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Upstream's init: zero offsets and masks; Xavier projections with zero biases."""
        nn.init.zeros_(self.offset_mask.weight)
        nn.init.zeros_(self.offset_mask.bias)
        if self.dw_kernel_size is not None:
            self.offset_mask_dw.reset_parameters()
        if self.with_pointwise:
            for proj in (self.value_proj, self.output_proj):
                nn.init.xavier_uniform_(proj.weight)
                if proj.bias is not None:
                    nn.init.zeros_(proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C, H, W)."""
        value = self.value_proj(x) if self.with_pointwise else x
        offset_input = self.offset_mask_dw(x) if self.dw_kernel_size is not None else x
        out = dcnv4(value, self.offset_mask(offset_input), self.group, self.kernel_size,
                    stride=1, pad=self.pad, dilation=self.dilation,
                    offset_scale=self.offset_scale, backend=self.backend)
        return self.output_proj(out) if self.with_pointwise else out

    def extra_repr(self) -> str:
        return (f'channels={self.channels}, group={self.group}, kernel_size={self.kernel_size}, '
                f'dw_kernel_size={self.dw_kernel_size}, with_pointwise={self.with_pointwise}, '
                f'backend={self.backend!r}')

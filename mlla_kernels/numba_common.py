"""What the numba engines share beyond the math (:mod:`.routed_scan.numba_math`): the entry
preamble (CPU check, compute dtype) and, for the ops on channels-last maps (depthwise conv,
linear attention's LePE), the tiling of pixels into programs and the taps of a 2-D kernel.
"""
import torch

from .routed_scan.numba_math import jit

CUDA_HINT = "Use backend='torch' (or 'auto') for CUDA tensors."


def cpu_compute_dtype(t: torch.Tensor, cuda_hint: str = CUDA_HINT) -> torch.dtype:
    """The preamble of every numba entry point: ``t`` must be on the CPU; the kernels compute
    in float64 for float64 inputs (verification: gradcheck), else in float32."""
    if t.device.type != 'cpu':
        raise RuntimeError(f"backend='numba' runs on CPU tensors; got device {t.device}. "
                           f'{cuda_hint}')
    return torch.float64 if t.dtype == torch.float64 else torch.float32


@jit(inline=True)
def tile_bounds(n, tiles, tile):
    """[start, stop) of tile ``tile`` of ``tiles`` near-equal ranges of n items."""
    return tile * n // tiles, (tile + 1) * n // tiles


@jit(inline=True)
def add_taps(out, src, wt, y, x, top, left):
    """out += sum_ij wt[i, j] * src[y + i - top, x + j - left] for a (kh, kw, C) kernel on an
    (H, W, C) map, zeros outside the map (``top``/``left``: the kernel's zero padding)."""
    height, width = src.shape[0], src.shape[1]
    kh, kw = wt.shape[0], wt.shape[1]
    for i in range(kh):
        yy = y + i - top
        if yy < 0 or yy >= height:
            continue
        for j in range(kw):
            xx = x + j - left
            if xx < 0 or xx >= width:
                continue
            wij = wt[i, j]
            row = src[yy, xx]
            for c in range(out.shape[0]):
                out[c] += wij[c] * row[c]


@jit(inline=True)
def add_weight_taps(dw, src, g, y, x, top, left):
    """The weight gradient of :func:`add_taps` at one pixel: dw[i, j] += g * src[y + i - top,
    x + j - left] (dw (kh, kw, C), g (C,))."""
    height, width = src.shape[0], src.shape[1]
    kh, kw = dw.shape[0], dw.shape[1]
    for i in range(kh):
        yy = y + i - top
        if yy < 0 or yy >= height:
            continue
        for j in range(kw):
            xx = x + j - left
            if xx < 0 or xx >= width:
                continue
            acc = dw[i, j]
            row = src[yy, xx]
            for c in range(g.shape[0]):
                acc[c] += g[c] * row[c]

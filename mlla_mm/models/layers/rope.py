"""2-D rotary position embedding (RoPE) over a row-major token grid, as in MLLA.

A token at (row, col) of an ``h x w`` grid with ``dim`` channels is rotated pair
by pair: channel pair ``p`` (channels ``2p, 2p+1``) is read as the complex
number ``x[2p] + i x[2p+1]`` and multiplied by ``exp(i theta_p)`` with, for
``k = dim // 4``::

    theta_p = row * base ** (-p / k)          for 0 <= p < k
    theta_p = col * base ** (-(p - k) / k)    for k <= p < 2k

The tables are built for the actual grid of every forward (no fixed-resolution
buffer), so any input size works and no checkpoint key depends on the size.
"""
from typing import Tuple

import torch

RopeTables = Tuple[torch.Tensor, torch.Tensor]


def rope_2d_tables(hw_shape: Tuple[int, int],
                   dim: int,
                   base: float = 10000.0,
                   device=None) -> RopeTables:
    """``(cos, sin)`` of the rotation angles, each ``(h * w, dim // 2)`` in float32.

    Args:
        hw_shape: ``(h, w)`` of the token grid (tokens are row-major).
        dim: number of channels rotated; must be a multiple of 4 (half the
            pairs encode the row, half the column).
        base: frequency base (10000 in MLLA).
        device: where the tables are built.
    """
    if dim % 4 != 0:
        raise ValueError(f'2-D RoPE needs a channel count divisible by 4 (row and column '
                         f'halves of complex pairs), got {dim}; choose embed_dims divisible by 4')
    h, w = hw_shape  # ints, or SymInts under torch.export (int() would specialize them)
    k = dim // 4
    # Same expression order as upstream, so the float32 tables are bit-identical.
    freqs = 1 / (base ** (torch.arange(k, device=device) / k))
    rows, cols = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device),
                                indexing='ij')
    angles = torch.cat([rows.unsqueeze(-1) * freqs, cols.unsqueeze(-1) * freqs], dim=-1)
    angles = angles.reshape(h * w, 2 * k)
    return torch.cos(angles), torch.sin(angles)


def apply_rope_2d(x: torch.Tensor, tables: RopeTables) -> torch.Tensor:
    """Rotate the channel pairs of tokens ``x`` of shape ``(..., h * w, dim)``.

    The rotation is done in float32 (cast back to ``x.dtype``) so half-precision
    runs do not lose the position signal of large row/column indices.
    """
    cos, sin = tables
    if x.shape[-2:] != (cos.shape[0], 2 * cos.shape[1]):
        raise ValueError(f'RoPE tables are for {cos.shape[0]} tokens x {2 * cos.shape[1]} '
                         f'channels, got input of shape {tuple(x.shape)}')
    pairs = x.float().reshape(*x.shape[:-1], -1, 2)
    real, imag = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack([real * cos - imag * sin, imag * cos + real * sin], dim=-1)
    return rotated.flatten(-2).to(x.dtype)

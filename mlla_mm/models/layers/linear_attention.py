"""The linear attention of MLLA (Mamba-Like Linear Attention), with RoPE and LePE.

For tokens ``v`` (the block's gated input, used directly as the value)::

    q, k   = ELU(qk(v)) + 1                     (two halves of one projection)
    q~, k~ = RoPE-2D(q), RoPE-2D(k)              (over all channels, then split into heads)
    z_i    = 1 / (q_i . mean_j k_j + 1e-6)       (un-rotated q, k)
    out_i  = q~_i (k~^T / sqrt(n)) (v / sqrt(n)) z_i
    out   += LePE(v)                             (depthwise 3x3 conv on the token grid)

Cost is linear in the number of tokens ``n``: ``O(n d^2)`` per head.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .rope import RopeTables, apply_rope_2d, rope_2d_tables


class MLLALinearAttention(nn.Module):
    """Multi-head linear attention with 2-D RoPE and a locally-enhanced positional encoding.

    Parameter names follow the official MLLA checkpoints (``qk``, ``lepe``).

    Args:
        dim: channels of the tokens (divisible by ``num_heads`` and by 4).
        num_heads: number of heads; each gets ``dim // num_heads`` contiguous channels.
        qkv_bias: give the query/key projection a bias.
        rope_base: frequency base of the 2-D RoPE.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True,
                 rope_base: float = 10000.0):
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f'MLLALinearAttention: dim {dim} is not divisible by '
                             f'num_heads {num_heads}')
        if dim % 4 != 0:
            raise ValueError(f'MLLALinearAttention: dim {dim} must be divisible by 4 for 2-D RoPE')
        self.dim = dim
        self.num_heads = num_heads
        self.rope_base = rope_base
        self.qk = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.lepe = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)

    def forward(self, x: torch.Tensor, hw_shape: Tuple[int, int],
                rope_tables: Optional[RopeTables] = None) -> torch.Tensor:
        """Attend over tokens ``x`` of shape ``(B, h * w, dim)`` (row-major grid ``hw_shape``).

        ``rope_tables`` (from :func:`rope_2d_tables`) may be passed in to share them
        between the blocks of a stage; they are built here otherwise.
        """
        b, n, c = x.shape
        h, w = hw_shape
        if h * w != n:
            raise ValueError(f'MLLALinearAttention: {n} tokens do not form a {h}x{w} grid')
        if rope_tables is None:
            rope_tables = rope_2d_tables(hw_shape, c, self.rope_base, device=x.device)
        heads, head_dim = self.num_heads, c // self.num_heads

        q, k = self.qk(x).chunk(2, dim=-1)
        q = F.elu(q) + 1.0
        k = F.elu(k) + 1.0
        q_rope = apply_rope_2d(q, rope_tables)
        k_rope = apply_rope_2d(k, rope_tables)

        def split_heads(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, n, heads, head_dim).transpose(1, 2)

        q, k, v, q_rope, k_rope = map(split_heads, (q, k, x, q_rope, k_rope))
        # Normaliser from the un-rotated q, k (RoPE would make it sign-indefinite).
        z = 1 / (q @ k.mean(dim=-2, keepdim=True).transpose(-2, -1) + 1e-6)
        # 1/n applied as two 1/sqrt(n) factors, as upstream (keeps k^T v small in fp16).
        scale = n ** -0.5
        kv = (k_rope.transpose(-2, -1) * scale) @ (v * scale)
        out = q_rope @ kv * z
        out = out.transpose(1, 2).reshape(b, n, c)

        lepe = self.lepe(x.transpose(1, 2).reshape(b, c, h, w))
        return out + lepe.flatten(2).transpose(1, 2)

    def extra_repr(self) -> str:
        return f'dim={self.dim}, num_heads={self.num_heads}'

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
from mmengine.model import BaseModule
from torch import nn

from .rope import RopeTables, apply_rope_2d, rope_2d_tables


class MLLALinearAttention(BaseModule):
    """Multi-head linear attention with 2-D RoPE and a locally-enhanced positional encoding.

    Parameter names follow the official MLLA checkpoints (``qk``, ``lepe``).

    Args:
        embed_dims: channels of the tokens (divisible by ``num_heads`` and by 4).
        num_heads: number of heads; each gets ``embed_dims // num_heads`` contiguous channels.
        qkv_bias: give the query/key projection a bias.
        rope_base: frequency base of the 2-D RoPE.
        init_cfg: mmengine init config.
    """

    def __init__(self, embed_dims: int, num_heads: int, qkv_bias: bool = True,
                 rope_base: float = 10000.0, init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if embed_dims % num_heads != 0:
            raise ValueError(f'MLLALinearAttention: embed_dims {embed_dims} is not divisible '
                             f'by num_heads {num_heads}')
        if embed_dims % 4 != 0:
            raise ValueError(f'MLLALinearAttention: embed_dims {embed_dims} must be divisible '
                             'by 4 for 2-D RoPE')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.rope_base = rope_base
        self.qk = nn.Linear(embed_dims, 2 * embed_dims, bias=qkv_bias)
        self.lepe = nn.Conv2d(embed_dims, embed_dims, 3, padding=1, groups=embed_dims)

    def forward(self, x: torch.Tensor, hw_shape: Tuple[int, int],
                rope_tables: Optional[RopeTables] = None) -> torch.Tensor:
        """Attend over tokens ``x`` (B, h * w, embed_dims) on the row-major grid ``hw_shape``.

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
        return f'embed_dims={self.embed_dims}, num_heads={self.num_heads}'

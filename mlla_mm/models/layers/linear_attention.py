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
from mmengine.model import BaseModule
from torch import nn

import mlla_kernels

from .linear import Linear
from .rope import RopeTables, rope_2d_tables
from .ssm import check_kernel_backend


class MLLALinearAttention(BaseModule):
    """Multi-head linear attention with 2-D RoPE and a locally-enhanced positional encoding.

    Parameter names follow the official MLLA checkpoints (``qk``, ``lepe``). The attention,
    LePE and the optional output gate run as one :func:`mlla_kernels.linear_attention` call
    (fused CPU kernels with a recompute backward under ``'numba'``; PyTorch ops under
    ``'torch'``, on a GPU, and when traced or compiled).

    Args:
        embed_dims: channels of the tokens (divisible by ``num_heads`` and by 4).
        num_heads: number of heads; each gets ``embed_dims // num_heads`` contiguous channels.
        qkv_bias: give the query/key projection a bias.
        rope_base: frequency base of the 2-D RoPE.
        kernel_backend: backend of :func:`mlla_kernels.linear_attention`: ``'auto'`` (the
            fused numba kernels on CPU when numba imports, else ``'torch'``), ``'numba'``,
            ``'torch'`` or ``'naive'`` (``'triton'`` runs ``'torch'``).
        init_cfg: mmengine init config.
    """

    def __init__(self, embed_dims: int, num_heads: int, qkv_bias: bool = True,
                 rope_base: float = 10000.0, kernel_backend: str = 'auto',
                 init_cfg: Optional[dict] = None):
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
        self.kernel_backend = check_kernel_backend(kernel_backend, 'MLLALinearAttention')
        self.qk = Linear(embed_dims, 2 * embed_dims, bias=qkv_bias)
        self.lepe = nn.Conv2d(embed_dims, embed_dims, 3, padding=1, groups=embed_dims)

    def forward(self, x: torch.Tensor, hw_shape: Tuple[int, int],
                rope_tables: Optional[RopeTables] = None,
                gate: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Attend over tokens ``x`` (B, h * w, embed_dims) on the row-major grid ``hw_shape``.

        ``rope_tables`` (from :func:`rope_2d_tables`) may be passed in to share them
        between the blocks of a stage; they are built here otherwise. ``gate`` (B, h * w,
        embed_dims), optional: the output is multiplied by ``SiLU(gate)`` (MLLA's block
        gate, fused into the same kernels).
        """
        b, n, c = x.shape
        h, w = hw_shape
        if h * w != n:
            raise ValueError(f'MLLALinearAttention: {n} tokens do not form a {h}x{w} grid')
        if rope_tables is None:
            rope_tables = rope_2d_tables(hw_shape, c, self.rope_base, device=x.device)
        cos, sin = rope_tables
        out = mlla_kernels.linear_attention(
            self.qk(x).reshape(b, h, w, 2 * c), x.reshape(b, h, w, c), cos, sin, self.num_heads,
            lepe_weight=self.lepe.weight[:, 0], lepe_bias=self.lepe.bias,
            gate=None if gate is None else gate.reshape(b, h, w, c), backend=self.kernel_backend)
        return out.reshape(b, n, c)

    def extra_repr(self) -> str:
        return f'embed_dims={self.embed_dims}, num_heads={self.num_heads}'

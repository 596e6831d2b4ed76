"""Row-major token grids and the pieces of the token backbones (MLLA, DemystifyNet).

Their blocks run on tokens ``(B, h*w, C)`` of a row-major ``h x w`` grid (``hw_shape``) and
step to maps ``(B, C, h, w)`` only for convolutions. A stage (:class:`TokenStage`) is a list
of blocks called as ``block(x, hw_shape, rope_tables)`` and an optional downsampling called
as ``downsample(x, hw_shape) -> (x, hw_shape)``.
"""
from typing import Mapping, Optional, Sequence, Tuple

import torch
import torch.utils.checkpoint as cp
from mmengine.model import BaseModule
from torch import nn

import mlla_kernels

from .linear import Linear
from .recompute import gelu_linear, norm_linear
from .rope import rope_2d_tables

HWShape = Tuple[int, int]


def tokens_to_map(x: torch.Tensor, hw_shape: HWShape) -> torch.Tensor:
    """(B, h*w, C) row-major tokens -> (B, C, h, w)."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *hw_shape)


def map_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, h*w, C) row-major tokens."""
    return x.flatten(2).transpose(1, 2)


class TokenMlp(BaseModule):
    """Token MLP ``fc2(GELU(fc1(x)))`` (exact erf GELU); keys ``fc1``, ``fc2``. In training
    only ``fc1(x)`` is kept for the backward (:func:`~.recompute.gelu_linear`).

    Args:
        embed_dims: input/output channels.
        hidden_dims: hidden channels.
        init_cfg: mmengine init config.
    """

    def __init__(self, embed_dims: int, hidden_dims: int, init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.fc1 = Linear(embed_dims, hidden_dims)
        self.fc2 = Linear(hidden_dims, embed_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # fc2(GELU(h)) keeping only h for the backward (GELU recomputed there)
        return gelu_linear(self.fc1(x), self.fc2.weight, self.fc2.bias)


class DepthwiseResidual(nn.Conv2d):
    """CPE (Chu et al.), MLLA's ``cpe1``/``cpe2``: ``x + dwconv3x3(x)`` on tokens.

    A ``Conv2d`` itself, so its keys are ``weight`` and ``bias`` as in the official models.

    Args:
        embed_dims: channels.
        kernel_backend: ``None`` runs the ``Conv2d`` itself; a backend name runs
            :func:`mlla_kernels.depthwise_conv2d` on the tokens as a channels-last map with the
            residual fused (``'auto'``: the fused numba kernels on CPU).
    """

    def __init__(self, embed_dims: int, kernel_backend: Optional[str] = None):
        super().__init__(embed_dims, embed_dims, 3, padding=1, groups=embed_dims)
        self.kernel_backend = kernel_backend

    def forward(self, x: torch.Tensor, hw_shape: HWShape) -> torch.Tensor:
        if self.kernel_backend is None:
            return x + map_to_tokens(super().forward(tokens_to_map(x, hw_shape)))
        b, n, c = x.shape
        out = mlla_kernels.depthwise_conv2d(x.unflatten(1, hw_shape), self.weight[:, 0],
                                            self.bias, residual=True,
                                            backend=self.kernel_backend)
        return out.reshape(b, n, c)


class TokenBlock(BaseModule):
    """Base of the blocks on tokens: the sub-blocks they share, with MLLA's parameter names.

    * the gated mixer branch (Mamba's block design, MLLA's and MILA's block), on the
      subclass's ``norm1``, ``in_proj``, ``act_proj``, ``dwc``, ``act``, ``attn``,
      ``out_proj`` and ``drop_path``::

          x + drop_path(out_proj(attn(SiLU(dwc(in_proj(LN1 x)))) * SiLU(act_proj(LN1 x))))

    * the MLP sub-block, ``x = x + cpe2(x)`` (with CPE) then ``x + drop_path(mlp(LN2 x))``,
      built by :meth:`_add_mlp` (``cpe2``, ``norm2``, ``mlp``).
    """

    def _add_mlp(self, embed_dims: int, mlp_ratio: float, with_cpe: bool,
                 kernel_backend: Optional[str] = None) -> None:
        self.cpe2 = DepthwiseResidual(embed_dims, kernel_backend) if with_cpe else None
        self.norm2 = nn.LayerNorm(embed_dims)
        self.mlp = TokenMlp(embed_dims, int(embed_dims * mlp_ratio))

    def _mlp_branch(self, x: torch.Tensor, hw_shape: HWShape) -> torch.Tensor:
        if self.cpe2 is not None:
            x = self.cpe2(x, hw_shape)
        # mlp(norm2(x)) keeping x and fc1's output for the backward (recompute.py)
        hidden, = norm_linear(x, self.norm2, self.mlp.fc1)
        return x + self.drop_path(gelu_linear(hidden, self.mlp.fc2.weight, self.mlp.fc2.bias))

    def _gated_mixer_branch(self, x: torch.Tensor, hw_shape: HWShape,
                            rope_tables=None) -> torch.Tensor:
        u, gate = norm_linear(x, self.norm1, self.in_proj, self.act_proj)
        gate = self.act(gate)
        u = self.act(self.dwc(tokens_to_map(u, hw_shape)))
        u = self.attn(map_to_tokens(u), hw_shape, rope_tables)
        return x + self.drop_path(self.out_proj(u * gate))


class TokenStage(BaseModule):
    """``blocks`` at one resolution, then an optional ``downsample``.

    Args:
        blocks: the stage's blocks, each called as ``block(x, hw_shape, rope_tables)``.
        downsample: called as ``downsample(x, hw_shape) -> (x, hw_shape)`` after the
            blocks; None for the last stage.
        rope_dims: channels of the 2-D RoPE tables the blocks share (built once per
            forward for the actual grid, never cached: a table made under inference_mode
            could not be reused in training); None: the blocks get ``rope_tables=None``.
        with_cp: run each block under ``torch.utils.checkpoint`` when grad mode is on
            (saves memory, costs a second forward).
        init_cfg: mmengine init config.
    """

    def __init__(self, blocks: Sequence[nn.Module], downsample: Optional[nn.Module] = None,
                 rope_dims: Optional[int] = None, with_cp: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.rope_dims = rope_dims
        self.with_cp = with_cp
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample

    def forward(self, x: torch.Tensor, hw_shape: HWShape):
        """Returns ``(stage_out, stage_hw, next_in, next_hw)``; next_* are downsampled."""
        rope_tables = None
        if self.rope_dims is not None:
            rope_tables = rope_2d_tables(hw_shape, self.rope_dims, device=x.device)
        for block in self.blocks:
            # Non-reentrant checkpointing also covers a first block whose input
            # needs no grad (frozen stem) but whose parameters do.
            if self.with_cp and torch.is_grad_enabled():
                x = cp.checkpoint(block, x, hw_shape, rope_tables, use_reentrant=False)
            else:
                x = block(x, hw_shape, rope_tables)
        if self.downsample is None:
            return x, hw_shape, x, hw_shape
        x_down, down_hw = self.downsample(x, hw_shape)
        return x, hw_shape, x_down, down_hw


def forward_token_stages(stages: Sequence[TokenStage], x: torch.Tensor,
                         out_norms: Mapping[int, nn.Module]) -> Tuple[torch.Tensor, ...]:
    """Run ``stages`` on the stem's map ``x`` (B, C, h, w); for each stage index in
    ``out_norms`` (ascending), its output through that norm as a contiguous NCHW map."""
    hw_shape = (x.shape[2], x.shape[3])
    x = map_to_tokens(x)
    outs = []
    for i, stage in enumerate(stages):
        out, out_hw, x, hw_shape = stage(x, hw_shape)
        if i in out_norms:
            outs.append(tokens_to_map(out_norms[i](out), out_hw).contiguous())
    return tuple(outs)

"""The ablation models of "Demystify Mamba in Vision" (Han et al., NeurIPS 2024), for dense tasks.

The paper (Sec. 5.1) takes Swin-T, replaces its window softmax attention by global linear
attention -- the baseline -- and changes one of Mamba's six designs at a time (Tab. 1), or adds
a positional encoding instead of the forget gate (Tab. 2). That code was never released.
:class:`DemystifyNet` is that model family: Swin-T's macro architecture (4x4 patch embedding,
widths 96-192-384-768, depths 2-2-6-2, heads 3-6-12-24, patch merging), every token mixer a
:class:`~mlla_mm.models.layers.UnifiedLinearAttention` set by one
:class:`~mlla_mm.models.layers.UnifiedDesign` (``design='forget_gate'``, ``'mamba'``, ...),
in the block the design names, with four NCHW outputs at strides 4-32 for mmdet/mmseg and
mmpretrain (``out_indices=(3,)`` + global pooling for ImageNet).
"""
from typing import Dict, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn

from ...registry import register_model
from ..layers import DropPath, stochastic_depth_rates
from ..layers.common import init_truncated_normal_, pad_to_multiple
from ..layers.linear import Linear
from ..layers.tokens import (DepthwiseResidual, HWShape, TokenBlock, TokenStage,
                             forward_token_stages, map_to_tokens, tokens_to_map)
from ..layers.unified_attention import UnifiedDesign, UnifiedLinearAttention
from .base import DenseBackbone


class LinearAttentionBlock(TokenBlock):
    """The Transformer block (paper Fig. 3a) on row-major tokens ``(B, h*w, C)``::

        x = x + cpe1(x)                                   (CPE only)
        x = x + drop_path(proj(mixer(LN1 x)))
        x = x + cpe2(x)                                   (CPE only)
        x = x + drop_path(mlp(LN2 x))

    Args:
        embed_dims (int): channels.
        num_heads (int): heads of the mixer (if the design is multi-head).
        design (UnifiedDesign): the design (``block='transformer'``).
        d_state (int): query/key channels of a single head.
        mlp_ratio (float): MLP hidden/in channels.
        qkv_bias (bool): bias of the query/key/value projections.
        drop_path_rate (float): stochastic depth of both residual branches.
        kernel_backend (str): scan backend for the forget gate.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self, embed_dims: int, num_heads: int, design: UnifiedDesign,
                 d_state: int = 16, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path_rate: float = 0.0, kernel_backend: str = 'auto',
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        c = embed_dims
        with_cpe = 'cpe' in design.pos_encodings
        self.cpe1 = DepthwiseResidual(c) if with_cpe else None
        self.norm1 = nn.LayerNorm(c)
        self.attn = UnifiedLinearAttention(c, num_heads, design, d_state=d_state,
                                           qkv_bias=qkv_bias, kernel_backend=kernel_backend)
        self.proj = Linear(c, c)
        self.drop_path = DropPath(drop_path_rate)
        self._add_mlp(c, mlp_ratio, with_cpe)

    def forward(self, x: torch.Tensor, hw_shape: HWShape, rope_tables=None) -> torch.Tensor:
        if self.cpe1 is not None:
            x = self.cpe1(x, hw_shape)
        x = x + self.drop_path(self.proj(self.attn(self.norm1(x), hw_shape, rope_tables)))
        return self._mlp_branch(x, hw_shape)


class MambaBlock(TokenBlock):
    """Mamba's block design (Fig. 3b) with the unified mixer in place of the SSM; with
    ``with_mlp`` also the MLP sub-block after it (Fig. 3c, MILA's block)::

        x = x + cpe1(x)                                   (CPE only)
        x = x + drop_path(out_proj(mixer(SiLU(dwc(in_proj(LN1 x)))) * SiLU(act_proj(LN1 x))))
        x = x + cpe2(x); x = x + drop_path(mlp(LN2 x))    (with_mlp only; cpe2 with CPE)

    ``in_proj``/``act_proj`` widen C to E*C (E = 2 for Mamba's block, 1 for MILA's), ``dwc``
    is a depthwise 3x3 conv (the 2-D stand-in for Mamba's causal conv1d). Parameter names are
    MLLA's, so with the 'mlla' design an official MLLA block's weights load unchanged.

    Args:
        embed_dims (int): channels C.
        num_heads (int): heads of the mixer (on E*C channels).
        design (UnifiedDesign): the design (``block='mamba'`` or ``'mamba_mlp'``).
        d_state (int): query/key channels of a single head.
        mlp_ratio (float): MLP hidden/in channels (with_mlp).
        qkv_bias (bool): bias of the query/key projection.
        drop_path_rate (float): stochastic depth of the residual branches.
        kernel_backend (str): scan backend for the forget gate.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self, embed_dims: int, num_heads: int, design: UnifiedDesign,
                 d_state: int = 16, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path_rate: float = 0.0, kernel_backend: str = 'auto',
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        c = embed_dims
        inner = int(round(design.expansion * c))
        with_cpe = 'cpe' in design.pos_encodings
        self.with_mlp = design.block == 'mamba_mlp'
        self.cpe1 = DepthwiseResidual(c) if with_cpe else None
        self.norm1 = nn.LayerNorm(c)
        self.in_proj = Linear(c, inner)
        self.act_proj = Linear(c, inner)
        self.dwc = nn.Conv2d(inner, inner, 3, padding=1, groups=inner)
        self.act = nn.SiLU()
        self.attn = UnifiedLinearAttention(inner, num_heads, design, d_state=d_state,
                                           qkv_bias=qkv_bias, kernel_backend=kernel_backend)
        self.out_proj = Linear(inner, c)
        self.drop_path = DropPath(drop_path_rate)
        if self.with_mlp:
            self._add_mlp(c, mlp_ratio, with_cpe)

    def forward(self, x: torch.Tensor, hw_shape: HWShape, rope_tables=None) -> torch.Tensor:
        if self.cpe1 is not None:
            x = self.cpe1(x, hw_shape)
        x = self._gated_mixer_branch(x, hw_shape, rope_tables)
        return self._mlp_branch(x, hw_shape) if self.with_mlp else x


BLOCKS = {'transformer': LinearAttentionBlock, 'mamba': MambaBlock, 'mamba_mlp': MambaBlock}


class PatchEmbed(BaseModule):
    """Swin's stem: ``proj`` conv (k = stride = patch) then ``norm`` (LayerNorm).

    The image is zero-padded right/bottom to a multiple of the patch size (as mmdet's Swin).
    """

    def __init__(self, in_channels: int, embed_dims: int, patch_size: int = 4,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, embed_dims, patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, C, ceil(H/p), ceil(W/p))."""
        x = self.proj(pad_to_multiple(x, self.patch_size))
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class PatchMerging(BaseModule):
    """Swin's downsampling: each 2x2 neighbourhood concatenated (4C), ``norm``, then a linear
    ``reduction`` to 2C (no bias). An odd grid is zero-padded right/bottom first.
    """

    def __init__(self, embed_dims: int, init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.norm = nn.LayerNorm(4 * embed_dims)
        self.reduction = Linear(4 * embed_dims, 2 * embed_dims, bias=False)

    def forward(self, x: torch.Tensor, hw_shape: HWShape) -> Tuple[torch.Tensor, HWShape]:
        x = pad_to_multiple(tokens_to_map(x, hw_shape), 2)
        x = F.pixel_unshuffle(x, 2)                       # (B, 4C, h/2, w/2)
        out_hw = (x.shape[2], x.shape[3])
        return self.reduction(self.norm(map_to_tokens(x))), out_hw


class DemystifyStage(TokenStage):
    """``depth`` blocks of one design at one resolution (sharing one RoPE table when the design
    has RoPE), then an optional :class:`PatchMerging`.

    Args:
        embed_dims (int): channels.
        depth (int): number of blocks.
        num_heads (int): mixer heads.
        design (UnifiedDesign): the design of every block.
        d_state (int): single-head query/key channels.
        mlp_ratio (float): MLP hidden/in channels.
        qkv_bias (bool): query/key/value projection bias.
        drop_path_rates (sequence of float): one stochastic depth rate per block.
        with_downsample (bool): end with a patch merging.
        with_cp (bool): gradient checkpointing per block (when grad is on).
        kernel_backend (str): scan backend for the forget gate.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self, embed_dims: int, depth: int, num_heads: int, design: UnifiedDesign,
                 d_state: int = 16, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path_rates: Sequence[float] = (), with_downsample: bool = True,
                 with_cp: bool = False, kernel_backend: str = 'auto',
                 init_cfg: Optional[dict] = None):
        rates = list(drop_path_rates) or [0.0] * depth
        block = BLOCKS[design.block]
        blocks = [block(embed_dims, num_heads, design, d_state=d_state, mlp_ratio=mlp_ratio,
                        qkv_bias=qkv_bias, drop_path_rate=rates[j],
                        kernel_backend=kernel_backend)
                  for j in range(depth)]
        downsample = PatchMerging(embed_dims) if with_downsample else None
        rope_dims = None
        if blocks and 'rope' in design.pos_encodings:
            rope_dims = blocks[0].attn.key_dims
        super().__init__(blocks, downsample, rope_dims=rope_dims, with_cp=with_cp,
                         init_cfg=init_cfg)


@register_model()
class DemystifyNet(DenseBackbone):
    """The paper's ablation models: Swin-T's macro architecture with global linear attention
    and any mix of Mamba's six designs; one NCHW map per stage (strides 4, 8, 16, 32).

    ``design`` picks the paper's row (:data:`~mlla_mm.models.layers.DESIGN_PRESETS`):
    ``'linear_attention'`` (the baseline), ``'input_gate'``, ``'forget_gate'``, ``'shortcut'``,
    ``'no_normalization'``, ``'single_head'``, ``'block_design_all'``, ``'block_design_sub'``
    (Tab. 1), ``'ape'``, ``'lepe'``, ``'cpe'``, ``'rope'`` (Tab. 2), ``'mamba'`` (all six)
    and ``'mlla'`` (block sub. + LePE + CPE + RoPE); or a dict of
    :class:`~mlla_mm.models.layers.UnifiedDesign` fields, e.g.
    ``dict(preset='mlla', forget_gate=True, scan_order='cross')``.

    Any input size works (padding to the patch size and to even grids; APE and RoPE follow the
    actual grid). No official weights exist; ``configs/demystify/imagenet_*`` train them with
    mmpretrain, and the dense configs start from those (``prefix='backbone.'``).

    Args:
        arch (str | dict): ``'tiny'``/``'t'`` (Swin-T: embed_dims 96, depths [2, 2, 6, 2],
            num_heads [3, 6, 12, 24]) or a dict with ``embed_dims``, ``depths``,
            ``num_heads`` (optionally ``preset`` plus overrides). Stage i has
            ``embed_dims * 2**i`` channels.
        design (str | dict | UnifiedDesign): the design of every block. Default: the
            linear-attention baseline.
        in_channels (int): image channels.
        patch_size (int): stride of the stem.
        mlp_ratio (float): MLP hidden/in channels.
        qkv_bias (bool): bias of the query/key/value projections.
        d_state (int): query/key channels of the single head (``multi_head=False``;
            Mamba's N). Default: 16.
        drop_path_rate (float): stochastic depth of the last block, linear from 0 (Swin-T:
            0.2 on ImageNet and COCO, 0.3 on ADE20K).
        pretrain_img_size (int): image size the APE table is made for (224); it is
            bicubic-resized to other grids.
        out_indices (sequence of int): stages whose outputs are returned, each through its
            own LayerNorm ``norm{i}``.
        frozen_stages (int): -1 none; 0 the stem (and APE); i >= 1 the stem and stages
            0..i-1 (blocks, downsampling, output norms).
        norm_eval (bool): keep BatchNorms in eval mode (the model has none; kept for the
            common interface).
        with_cp (bool): gradient checkpointing per block.
        kernel_backend (str): backend of the forget gate's scan ('auto', 'naive', 'torch',
            'numba', 'triton').
        init_cfg (dict, optional): e.g. ``dict(type='Pretrained', checkpoint=PATH,
            prefix='backbone.')`` for a checkpoint of ``configs/demystify/imagenet_*``.
    """

    arch_zoo: Dict[str, dict] = {
        **dict.fromkeys(('t', 'tiny'), dict(embed_dims=96, depths=[2, 2, 6, 2],
                                            num_heads=[3, 6, 12, 24])),
    }
    essential_keys = ('embed_dims', 'depths', 'num_heads')

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 design: Union[str, Mapping, UnifiedDesign] = 'linear_attention',
                 in_channels: int = 3,
                 patch_size: int = 4,
                 mlp_ratio: float = 4.0,
                 qkv_bias: bool = True,
                 d_state: int = 16,
                 drop_path_rate: float = 0.2,
                 pretrain_img_size: int = 224,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 kernel_backend: str = 'auto',
                 init_cfg: Optional[Union[dict, list]] = None):
        super().__init__(out_indices=out_indices, frozen_stages=frozen_stages,
                         norm_eval=norm_eval, init_cfg=init_cfg)
        name = type(self).__name__
        settings = self.resolve_arch(arch)
        embed_dims = int(settings['embed_dims'])
        depths = [int(d) for d in settings['depths']]
        num_heads = [int(n) for n in settings['num_heads']]
        if len(depths) != len(num_heads) or not depths:
            raise ValueError(f'{name}: depths {depths} and num_heads {num_heads} must be '
                             'non-empty lists of the same length (one entry per stage)')
        self.design = UnifiedDesign.build(design)
        self.num_stages = len(depths)
        self.num_features = [embed_dims * 2 ** i for i in range(self.num_stages)]
        self._check_out_indices(self.num_stages)
        self._check_frozen_stages(self.num_stages)
        self.in_channels = in_channels
        self.embed_dims = embed_dims
        self.depths = depths
        self.num_heads = num_heads
        self.with_cp = with_cp
        self.kernel_backend = kernel_backend

        self.patch_embed = PatchEmbed(in_channels, embed_dims, patch_size)
        if 'ape' in self.design.pos_encodings:
            grid = pretrain_img_size // patch_size
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, embed_dims, grid, grid))
        else:
            self.absolute_pos_embed = None
        rates = stochastic_depth_rates(drop_path_rate, depths)
        self.layers = nn.ModuleList([
            DemystifyStage(self.num_features[i], depths[i], num_heads[i], self.design,
                           d_state=d_state, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                           drop_path_rates=rates[i], with_downsample=i < self.num_stages - 1,
                           with_cp=with_cp, kernel_backend=kernel_backend)
            for i in range(self.num_stages)])
        for i in self.out_indices:
            self.add_module(f'norm{i}', nn.LayerNorm(self.num_features[i]))

        self._init_default_weights()
        self._freeze_stages()

    def _init_default_weights(self) -> None:
        # Swin's init (truncated normal for linear layers, unit LayerNorms), then Mamba's
        # init of the gates.
        init_truncated_normal_(self)
        for m in self.modules():
            if isinstance(m, UnifiedLinearAttention):
                m.reset_ssm_parameters()
        if self.absolute_pos_embed is not None:
            with torch.no_grad():
                self.absolute_pos_embed.normal_(std=0.02).clamp_(-2.0, 2.0)

    def _stem_parts(self) -> list:
        return [self.patch_embed, self.absolute_pos_embed]

    def _stage_parts(self, index: int) -> list:
        return [self.layers[index], getattr(self, f'norm{index}', None)]

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Images ``(B, in_channels, H, W)`` -> ``(B, C_i, H_i, W_i)`` per ``out_indices``."""
        self._check_images(x)
        x = self.patch_embed(x)
        if self.absolute_pos_embed is not None:
            ape = self.absolute_pos_embed
            if ape.shape[2:] != x.shape[2:]:
                ape = F.interpolate(ape, size=x.shape[2:], mode='bicubic', align_corners=False)
            x = x + ape
        return forward_token_stages(self.layers, x,
                                    {i: getattr(self, f'norm{i}') for i in self.out_indices})

"""MLLA backbone (Mamba-Like Linear Attention) for dense prediction.

Paper: "Demystify Mamba in Vision: A Linear Attention Perspective" (Han et al.,
NeurIPS 2024). Same function and parameter names as the official models
(LeapLabTHU/MLLA), so the official ImageNet checkpoints load unchanged, with
what the dense version adds upstream: per-output LayerNorms ``norm0..norm3``,
padding for arbitrary input sizes and RoPE built for the actual feature size.
"""
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch import nn

import mlla_kernels

from ...registry import register_model
from ...utils.checkpoint import StateDict
from ..layers import DropPath, MLLALinearAttention, check_kernel_backend, stochastic_depth_rates
from ..layers.common import (ChannelsLastConv2d, init_truncated_normal_, pad_to_multiple,
                             recompute_in_backward)
from ..layers.linear import Linear
from ..layers.recompute import norm_linear
from ..layers.tokens import (DepthwiseResidual, HWShape, TokenBlock, TokenStage,
                             forward_token_stages, map_to_tokens, tokens_to_map)
from .base import DenseBackbone


class ConvNormAct(BaseModule):
    """Conv2d (same padding), optional BatchNorm, optional ReLU; keys ``conv.*``, ``norm.*``.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size (padding ``kernel_size // 2``).
        stride: convolution stride.
        groups: convolution groups (``in_channels`` for depthwise).
        bias: give the convolution a bias.
        with_norm: follow the convolution with BatchNorm2d.
        with_act: end with ReLU.
        init_cfg: mmengine init config.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1, bias: bool = True, with_norm: bool = True,
                 with_act: bool = True, init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.conv = ChannelsLastConv2d(in_channels, out_channels, kernel_size, stride=stride,
                                       padding=kernel_size // 2, groups=groups, bias=bias)
        self.norm = nn.BatchNorm2d(out_channels) if with_norm else None
        # in place: neither the convolution's nor BatchNorm's backward needs its output
        self.act = nn.ReLU(inplace=True) if with_act else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        if self.act is not None:
            x = self.act(x)
        return x


class MLLAStem(BaseModule):
    """Convolutional stem of total stride 4 (no norm after it).

    ``conv1`` (3x3/2) -> residual pair ``conv2`` (3x3, 3x3) -> ``conv3`` (3x3/2
    to ``4 * embed_dims``, then 1x1 to ``embed_dims``), BatchNorm after every
    conv and ReLU inside. The image is zero-padded right/bottom to a multiple of 4.

    Args:
        in_channels: image channels.
        embed_dims: output channels.
        init_cfg: mmengine init config.
    """

    def __init__(self, in_channels: int, embed_dims: int, init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        half = embed_dims // 2
        self.conv1 = ConvNormAct(in_channels, half, 3, stride=2, bias=False)
        self.conv2 = nn.Sequential(
            ConvNormAct(half, half, 3, bias=False),
            ConvNormAct(half, half, 3, bias=False, with_act=False))
        self.conv3 = nn.Sequential(
            ConvNormAct(half, 4 * embed_dims, 3, stride=2, bias=False),
            ConvNormAct(4 * embed_dims, embed_dims, 1, bias=False, with_act=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_to_multiple(x, 4)
        x = self.conv1(x)
        x = self.conv2(x) + x
        return self.conv3(x)


class MLLABlock(TokenBlock):
    """One MLLA block on row-major tokens ``(B, h*w, C)``.

    ::

        x = x + cpe1(x)
        x = x + drop_path(out_proj(attn(SiLU(dwc(in_proj(LN1 x)))) * SiLU(act_proj(LN1 x))))
        x = x + cpe2(x)
        x = x + drop_path(mlp(LN2 x))

    ``cpe1``, ``cpe2`` and ``dwc`` are depthwise 3x3 convs on the token grid, run as
    :func:`mlla_kernels.depthwise_conv2d` (residual, SiLU fused); the attention, its LePE
    and the gate ``SiLU(act_proj(LN1 x))`` run as one :func:`mlla_kernels.linear_attention`.

    Args:
        embed_dims: channels.
        num_heads: heads of the linear attention.
        mlp_ratio: hidden/in channels of the MLP.
        qkv_bias: give the attention's query/key projection a bias.
        drop_path_rate: stochastic depth rate of both residual branches.
        kernel_backend: backend of the block's kernels (``'auto'``: the fused numba kernels
            on CPU, PyTorch ops on a GPU; ``'numba'``, ``'torch'``, ``'naive'``).
        init_cfg: mmengine init config.
    """

    def __init__(self, embed_dims: int, num_heads: int, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, drop_path_rate: float = 0.0,
                 kernel_backend: str = 'auto', init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        c = embed_dims
        self.kernel_backend = check_kernel_backend(kernel_backend, 'MLLABlock')
        self.cpe1 = DepthwiseResidual(c, kernel_backend)
        self.norm1 = nn.LayerNorm(c)
        self.in_proj = Linear(c, c)
        self.act_proj = Linear(c, c)
        self.dwc = nn.Conv2d(c, c, 3, padding=1, groups=c)
        self.act = nn.SiLU()
        self.attn = MLLALinearAttention(c, num_heads, qkv_bias=qkv_bias,
                                        kernel_backend=kernel_backend)
        self.out_proj = Linear(c, c)
        self.drop_path = DropPath(drop_path_rate)
        self._add_mlp(c, mlp_ratio, with_cpe=True, kernel_backend=kernel_backend)

    def forward(self, x: torch.Tensor, hw_shape: HWShape, rope_tables=None) -> torch.Tensor:
        x = self.cpe1(x, hw_shape)
        b, n, c = x.shape
        # in_proj(norm1(x)), act_proj(norm1(x)), keeping only x for the backward (recompute.py)
        inner, gate = norm_linear(x, self.norm1, self.in_proj, self.act_proj)
        # tokens as a channels-last map (a view): no NCHW transposes around the convolutions
        mixed = mlla_kernels.depthwise_conv2d(
            inner.reshape(b, *hw_shape, c), self.dwc.weight[:, 0], self.dwc.bias,
            activation='silu', backend=self.kernel_backend)
        out = self.attn(mixed.reshape(b, n, c), hw_shape, rope_tables, gate=gate)
        x = x + self.drop_path(self.out_proj(out))
        return self._mlp_branch(x, hw_shape)


class MLLAPatchMerging(BaseModule):
    """Downsampling between stages: C -> 2C channels, stride 2 (ceil halving).

    ``conv.0`` 1x1 (C -> 8C) + ReLU, ``conv.1`` depthwise 3x3/2 + ReLU,
    ``conv.2`` 1x1 (8C -> 2C) + BatchNorm. An odd grid is zero-padded to even
    *before* ``conv.0``, as upstream: the padded cells then hold ReLU(bias)
    rather than zeros when the strided conv reads them.

    Args:
        embed_dims: input channels C.
        expand_ratio: hidden channels as a multiple of the 2C output channels.
        init_cfg: mmengine init config.
    """

    def __init__(self, embed_dims: int, expand_ratio: float = 4.0,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        out_dims = 2 * embed_dims
        hidden = int(out_dims * expand_ratio)
        self.conv = nn.Sequential(
            ConvNormAct(embed_dims, hidden, 1, with_norm=False),
            ConvNormAct(hidden, hidden, 3, stride=2, groups=hidden, with_norm=False),
            ConvNormAct(hidden, out_dims, 1, with_act=False))

    def _expand(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv[1](self.conv[0](x))

    def forward(self, x: torch.Tensor, hw_shape: HWShape) -> Tuple[torch.Tensor, HWShape]:
        x = pad_to_multiple(tokens_to_map(x, hw_shape), 2)
        # The 8C-wide map between the 1x1 and the strided depthwise conv is the largest
        # activation of a stage (32 MB per image at stage 0 of MLLA-T at 512^2): computed again
        # in the backward instead of kept (no BatchNorm in these two convs, so the running
        # statistics see one forward). ~3 % of a training step for 4-7 % less peak memory.
        x = recompute_in_backward(self._expand, x)
        x = self.conv[2](x)
        return map_to_tokens(x), (x.shape[2], x.shape[3])


class MLLAStage(TokenStage):
    """``depth`` MLLA blocks at one resolution sharing one RoPE table, then an optional
    :class:`MLLAPatchMerging`.

    Args:
        embed_dims: channels.
        depth: number of blocks.
        num_heads: attention heads.
        mlp_ratio: MLP hidden/in channels.
        qkv_bias: query/key projection bias.
        drop_path_rates: one stochastic depth rate per block.
        with_downsample: end with a patch merging (all stages but the last).
        with_cp: run each block under ``torch.utils.checkpoint`` when grad mode
            is on (saves memory, costs a second forward).
        kernel_backend: backend of the blocks' kernels (see :class:`MLLABlock`).
        init_cfg: mmengine init config.
    """

    def __init__(self, embed_dims: int, depth: int, num_heads: int, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, drop_path_rates: Sequence[float] = (),
                 with_downsample: bool = True, with_cp: bool = False,
                 kernel_backend: str = 'auto', init_cfg: Optional[dict] = None):
        rates = list(drop_path_rates) or [0.0] * depth
        blocks = [MLLABlock(embed_dims, num_heads, mlp_ratio, qkv_bias, rates[j],
                            kernel_backend=kernel_backend)
                  for j in range(depth)]
        downsample = MLLAPatchMerging(embed_dims) if with_downsample else None
        super().__init__(blocks, downsample, rope_dims=embed_dims, with_cp=with_cp,
                         init_cfg=init_cfg)


@register_model()
class MLLA(DenseBackbone):
    """MLLA backbone returning one NCHW feature map per stage (strides 4, 8, 16, 32).

    Any input size works: the stem pads the image to a multiple of 4 and each
    downsampling pads its grid to even, so a stage-i map is ``ceil(H / 2**(i+2))``
    high (e.g. 250x330 -> 63x83, 32x42, 16x21, 8x11). Parameter names are those of
    the official ImageNet checkpoints plus ``norm{i}`` for each output.

    Args:
        arch: a preset, ``'tiny'``/``'t'``, ``'small'``/``'s'`` or ``'base'``/``'b'``
            (embed_dims 64/64/96, depths [2,4,8,4]/[3,6,21,6]/[3,6,21,6],
            num_heads [2,4,8,16]/[2,4,8,16]/[3,6,12,24]), or a dict with keys
            ``embed_dims``, ``depths``, ``num_heads`` (optionally ``preset`` plus
            overrides). Stage i has ``embed_dims * 2**i`` channels, which must be
            divisible by its head count and by 4.
        in_channels: image channels.
        mlp_ratio: MLP hidden/in channels in every block.
        qkv_bias: give the attention's query/key projection a bias.
        drop_path_rate: stochastic depth rate of the last block; rates grow
            linearly from 0 over all blocks (0.1 in the official 1x detection
            configs, 0.3 in 3x).
        out_indices: stages whose outputs are returned (each through its own
            LayerNorm ``norm{i}``, created only for these stages).
        frozen_stages: ``-1`` freezes nothing; ``0`` freezes the stem
            (``patch_embed``); ``i >= 1`` freezes the stem and stages ``0..i-1``
            (their blocks, their downsampling and their output norms), as in
            mmdet's Swin. Frozen parts get ``requires_grad=False`` and stay in eval mode.
        norm_eval: keep every BatchNorm (stem, downsampling) in eval mode while
            training. Upstream trains them (2 images per GPU).
        with_cp: gradient checkpointing per block (saves memory, slower).
        kernel_backend: backend of the blocks' kernels (:func:`mlla_kernels.linear_attention`,
            :func:`mlla_kernels.depthwise_conv2d`): ``'auto'`` (the fused numba kernels on
            CPU when numba imports, PyTorch ops on a GPU), ``'numba'``, ``'torch'`` or
            ``'naive'``.
        init_cfg: ``dict(type='Pretrained', checkpoint=PATH_OR_URL)`` loads an
            official MLLA checkpoint (the classifier ``head``/``norm`` and the
            fixed-resolution ``attn.rope.rotations`` buffers are dropped, the
            rest is loaded and mismatches are logged); ``None`` keeps the random init.
    """

    arch_zoo: Dict[str, dict] = {
        **dict.fromkeys(('t', 'tiny'), dict(embed_dims=64, depths=[2, 4, 8, 4],
                                            num_heads=[2, 4, 8, 16])),
        **dict.fromkeys(('s', 'small'), dict(embed_dims=64, depths=[3, 6, 21, 6],
                                             num_heads=[2, 4, 8, 16])),
        **dict.fromkeys(('b', 'base'), dict(embed_dims=96, depths=[3, 6, 21, 6],
                                            num_heads=[3, 6, 12, 24])),
    }
    essential_keys = ('embed_dims', 'depths', 'num_heads')

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 in_channels: int = 3,
                 mlp_ratio: float = 4.0,
                 qkv_bias: bool = True,
                 drop_path_rate: float = 0.1,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 kernel_backend: str = 'auto',
                 init_cfg: Optional[Union[dict, list]] = None):
        super().__init__(out_indices=out_indices, frozen_stages=frozen_stages,
                         norm_eval=norm_eval, init_cfg=init_cfg)
        settings = self.resolve_arch(arch)
        embed_dims = int(settings['embed_dims'])
        depths = [int(d) for d in settings['depths']]
        num_heads = [int(n) for n in settings['num_heads']]
        if len(depths) != len(num_heads) or not depths:
            raise ValueError(f'MLLA: depths {depths} and num_heads {num_heads} must be '
                             'non-empty lists of the same length (one entry per stage)')
        self.num_stages = len(depths)
        self.num_features = [embed_dims * 2 ** i for i in range(self.num_stages)]
        for i, (dims, heads) in enumerate(zip(self.num_features, num_heads)):
            if heads <= 0 or dims % heads or dims % 4:
                raise ValueError(f'MLLA: stage {i} has {dims} channels (embed_dims * 2**{i}) '
                                 f'and {heads} heads; channels must be divisible by the '
                                 'head count and by 4 (2-D RoPE)')
        self._check_out_indices(self.num_stages)
        self._check_frozen_stages(self.num_stages)
        self.in_channels = in_channels
        self.embed_dims = embed_dims
        self.depths = depths
        self.num_heads = num_heads
        self.with_cp = with_cp
        self.kernel_backend = check_kernel_backend(kernel_backend, 'MLLA')

        self.patch_embed = MLLAStem(in_channels, embed_dims)
        rates = stochastic_depth_rates(drop_path_rate, depths)
        self.layers = nn.ModuleList([
            MLLAStage(self.num_features[i], depths[i], num_heads[i], mlp_ratio=mlp_ratio,
                      qkv_bias=qkv_bias, drop_path_rates=rates[i],
                      with_downsample=i < self.num_stages - 1, with_cp=with_cp,
                      kernel_backend=kernel_backend)
            for i in range(self.num_stages)])
        for i in self.out_indices:
            self.add_module(f'norm{i}', nn.LayerNorm(self.num_features[i]))

        self._init_default_weights()
        self._freeze_stages()

    def _init_default_weights(self) -> None:
        # Upstream's init: truncated normal (std 0.02) for linear layers, unit
        # LayerNorms; convolutions keep PyTorch's default.
        init_truncated_normal_(self)

    def _stem_parts(self) -> list:
        return [self.patch_embed]

    def _stage_parts(self, index: int) -> list:
        return [self.layers[index], getattr(self, f'norm{index}', None)]

    def convert_checkpoint(self, state_dict: StateDict) -> StateDict:
        """Drop the classifier (``head.*``, final ``norm.*``) and the RoPE buffers.

        ``*.attn.rope.rotations`` are deterministic tables fixed to 224 input;
        this model builds them for the actual size instead.
        """
        def dropped(key: str) -> bool:
            return (key.startswith(('head.', 'norm.'))
                    or key.endswith('attn.rope.rotations'))

        kept = {k: v for k, v in state_dict.items() if not dropped(k)}
        if len(kept) < len(state_dict):
            print_log(f'MLLA: dropped {len(state_dict) - len(kept)} classifier/RoPE-buffer '
                      'keys of the official checkpoint', logger='current')
        return kept

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Images ``(B, in_channels, H, W)`` -> ``(B, C_i, H_i, W_i)`` per ``out_indices``."""
        self._check_images(x)
        return forward_token_stages(self.layers, self.patch_embed(x),
                                    {i: getattr(self, f'norm{i}') for i in self.out_indices})

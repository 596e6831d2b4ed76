"""HRVMamba: DVSS blocks (multi-scale depthwise convs + SS2D with DCNv4 + MLP) on HRNet's layout.

Paper: "HRVMamba: High-Resolution Visual State Space Model for Dense Prediction" (v1) /
"Efficient High-Resolution Visual Representation Learning with State Space Model for Human
Pose Estimation" (v2), Zhang et al., arXiv 2410.03174; code zhanghao5201/HRVMamba.

The module tree and parameter names are those of upstream's ``HRVmamba`` (mmpose's
``HRNet``/``HRModule`` names: ``conv1``, ``bn1``, ``layer1``, ``transition{1,2,3}``,
``stage{2,3,4}.m.branches.b.k``, ``stage{2,3,4}.m.fuse_layers.i.j``) and of its segmentation
wrapper ``Backbone_HRVMamba`` (``neck.*``, ``outnorm{i}``), so the official pose,
segmentation and ImageNet files load unchanged. Every map is NCHW; any input size works
(the up-sampled fuse terms are resized to the exact target size, as upstream's
segmentation copy does).
"""
import re
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch import nn

from ...registry import register_model
from ...utils.checkpoint import CheckpointError, StateDict
from ..layers.common import DropPath, LayerNorm2d, init_truncated_normal_
from ..layers.dcnv4 import DCN_BACKENDS, DCNv4
from ..layers.ss2d import SS2D, Linear2d
from .base import DenseBackbone

# Channels of the HRFuseScales-style neck (upstream's Backbone_HRVMamba), fixed upstream.
NECK_CHANNELS = (128, 256, 512, 1024)
NECK_OUT_CHANNELS = 2048
# HRNet's stem width, fixed upstream whatever the variant.
STEM_CHANNELS = 64
BATCH_NORMS = dict(BN=nn.BatchNorm2d, BN2d=nn.BatchNorm2d, SyncBN=nn.SyncBatchNorm)


def build_batch_norm(norm_cfg: dict, channels: int) -> nn.Module:
    """A BatchNorm from an mmcv-style ``norm_cfg`` (``BN`` or ``SyncBN``; ``requires_grad``,
    ``momentum``, ``eps``), without importing mmcv."""
    cfg = dict(norm_cfg)
    kind = cfg.pop('type', None)
    if kind not in BATCH_NORMS:
        raise ValueError(f'HRVMamba: norm_cfg type must be one of {sorted(BATCH_NORMS)} (the '
                         f'official keys are BatchNorm\'s), got {norm_cfg!r}')
    requires_grad = cfg.pop('requires_grad', True)
    unknown = set(cfg) - {'momentum', 'eps'}
    if unknown:
        raise ValueError(f'HRVMamba: norm_cfg takes type, requires_grad, momentum and eps; '
                         f'got {sorted(unknown)}')
    norm = BATCH_NORMS[kind](channels, **cfg)
    for p in norm.parameters():
        p.requires_grad = requires_grad
    return norm


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, groups=groups,
                     bias=False)


def _conv1x1(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, bias=False)


def _maybe_checkpoint(fn, x: torch.Tensor, with_cp: bool) -> torch.Tensor:
    # Non-reentrant checkpointing also covers an input that needs no grad (frozen stem).
    if with_cp and torch.is_grad_enabled():
        return cp.checkpoint(fn, x, use_reentrant=False)
    return fn(x)


class Bottleneck(BaseModule):
    """ResNet bottleneck (expansion 4, stride 1) with mmpose/mmseg's key names
    ``conv1..3``, ``bn1..3``, ``downsample.{0,1}``.

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels (4 x the middle width).
        norm_cfg (dict): BatchNorm config.
        with_cp (bool): recompute the block in backward.
        init_cfg (dict, optional): mmengine init config.
    """

    expansion = 4

    def __init__(self, in_channels: int, out_channels: int, norm_cfg: dict,
                 with_cp: bool = False, init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        mid = out_channels // self.expansion
        self.with_cp = with_cp
        self.conv1 = _conv1x1(in_channels, mid)
        self.bn1 = build_batch_norm(norm_cfg, mid)
        self.conv2 = _conv3x3(mid, mid)
        self.bn2 = build_batch_norm(norm_cfg, mid)
        self.conv3 = _conv1x1(mid, out_channels)
        self.bn3 = build_batch_norm(norm_cfg, out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if in_channels != out_channels:
            self.downsample = nn.Sequential(_conv1x1(in_channels, out_channels),
                                            build_batch_norm(norm_cfg, out_channels))

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _maybe_checkpoint(self._forward, x, self.with_cp)


class ConvBNReLU(BaseModule):
    """Conv (no bias) -> BN -> ReLU with mmcv ``ConvModule``'s key names ``conv``, ``bn``.

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        kernel_size (int): odd kernel size ('same' padding).
        stride (int): conv stride.
        norm_cfg (dict): BatchNorm config.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int,
                 norm_cfg: dict, init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                              padding=kernel_size // 2, bias=False)
        self.bn = build_batch_norm(norm_cfg, out_channels)
        self.activate = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.bn(self.conv(x)))


class DropoutMlp(BaseModule):
    """fc1 -> GELU -> Dropout -> fc2 -> Dropout over the channels (``mlp.fc1/fc2``, Linear2d).

    Args:
        embed_dims (int): input/output channels.
        hidden_dims (int): hidden channels.
        drop (float): Dropout rate. Default: 0.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self, embed_dims: int, hidden_dims: int, drop: float = 0.0,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.fc1 = Linear2d(embed_dims, hidden_dims)
        self.act = nn.GELU()
        self.fc2 = Linear2d(hidden_dims, embed_dims)
        self.drop = nn.Dropout(drop) if drop > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class DSS2D(SS2D):
    """HRVMamba's SS2D: VMamba's v2 SS2D (no z gate) with a DCNv4 in place of the depthwise
    conv (``conv2d``, groups = dt_rank) and a Dropout after ``out_proj``.

    Args:
        embed_dims (int): channels C; the inner width is ``ssm_ratio * C``.
        dcn_pointwise (bool): the DCNv4 has ``value_proj``/``output_proj`` (upstream as
            coded) or not (the published model sizes). Default: False.
        dcn_offset_dw (bool): a depthwise 3x3 conv before the DCNv4's offset/mask projection
            (upstream: only when C % 80 == 0, i.e. every branch of HRVMamba-B). Default: False.
        drop (float): Dropout rate after ``out_proj`` (upstream's ``ssm_drop_rate``).
        dcn_backend (str): see :func:`~mlla_mm.models.layers.dcnv4.dcnv4`.
        **ss2d_kwargs: :class:`SS2D` arguments (d_state, ssm_ratio, dt_rank, kernel_backend).
    """

    def __init__(self, embed_dims: int, dcn_pointwise: bool = False, dcn_offset_dw: bool = False,
                 drop: float = 0.0, dcn_backend: str = 'auto', **ss2d_kwargs):
        super().__init__(embed_dims, **ss2d_kwargs)
        if self.d_inner % self.dt_rank:
            raise ValueError(f'DSS2D: inner width {self.d_inner} does not split into dt_rank '
                             f'{self.dt_rank} DCNv4 groups')
        self.conv2d = DCNv4(self.d_inner, group=self.dt_rank,
                            dw_kernel_size=3 if dcn_offset_dw else None,
                            with_pointwise=dcn_pointwise, output_bias=False, backend=dcn_backend)
        self.dropout = nn.Dropout(drop) if drop > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(super().forward(x))


def has_offset_dw(channels: int) -> bool:
    """Upstream's rule: the DCNv4 of a C-channel block gets its depthwise offset conv iff
    C % 80 == 0 (every branch of HRVMamba-B, none of T/S)."""
    return channels % 80 == 0


def _split_channels(channels: int, groups: int) -> List[int]:
    """Equal groups, the remainder to group 0 (upstream's ``_split_channels``)."""
    split = [channels // groups] * groups
    split[0] += channels - sum(split)
    return split


class HRVMambaBlock(BaseModule):
    """The DVSS block (upstream ``HRVmambaBlock``), channel-first, three residual branches:

    1. ESInB: ``x + [DropPath](GELU(shuffle(dwconv_{3,5,7,9}(LN0(x)) on 4 channel groups)))``;
    2. DSS2D: ``x + DropPath(op(LN(x)))`` (:class:`DSS2D`);
    3. MLP: ``x + DropPath(mlp(LN2(x)))`` (ratio 2, GELU).

    Args:
        embed_dims (int): channels C (a multiple of 4: the channel shuffle).
        drop_path (float): stochastic depth rate.
        esinb_drop_path (bool): DropPath on the ESInB branch too (upstream's classification
            and segmentation copies; its pose copy has none). Default: True.
        mlp_ratio (float): MLP hidden width / C. Default: 2.0.
        mlp_drop (float): Dropout in the MLP (``mlp_drop_rate``). Default: 0.
        ssm_drop (float): Dropout after the SS2D (``ssm_drop_rate``). Default: 0.
        with_cp (bool): recompute the block in backward. Default: False.
        init_cfg (dict, optional): mmengine init config.
        **dss2d_kwargs: :class:`DSS2D` arguments.
    """

    KERNELS = (3, 5, 7, 9)

    def __init__(self, embed_dims: int, drop_path: float = 0.0, esinb_drop_path: bool = True,
                 mlp_ratio: float = 2.0, mlp_drop: float = 0.0, ssm_drop: float = 0.0,
                 with_cp: bool = False, init_cfg: Optional[dict] = None, **dss2d_kwargs):
        super().__init__(init_cfg=init_cfg)
        groups = len(self.KERNELS)
        if embed_dims % groups:
            raise ValueError(f'HRVMambaBlock: channels ({embed_dims}) must be a multiple of '
                             f'{groups} (channel shuffle over the {groups} conv groups)')
        self.with_cp = with_cp
        self.split_channels = _split_channels(embed_dims, groups)
        self.norm0 = LayerNorm2d(embed_dims)
        self.conv2d = nn.ModuleList([
            nn.Conv2d(c, c, k, padding=k // 2, groups=c)
            for c, k in zip(self.split_channels, self.KERNELS)])
        self.act0 = nn.GELU()
        self.norm = LayerNorm2d(embed_dims)
        self.op = DSS2D(embed_dims, drop=ssm_drop, **dss2d_kwargs)
        self.drop_path = DropPath(drop_path)
        self.esinb_drop_path = esinb_drop_path
        self.norm2 = LayerNorm2d(embed_dims)
        self.mlp = DropoutMlp(embed_dims, int(embed_dims * mlp_ratio), mlp_drop)

    def _esinb(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(self.norm0(x), self.split_channels, dim=1)
        y = torch.cat([conv(t) for conv, t in zip(self.conv2d, parts)], dim=1)
        # channel shuffle over the 4 groups: (B, 4, C/4, H, W) -> (B, C/4, 4, H, W)
        batch, channels, height, width = y.shape
        y = y.view(batch, len(self.KERNELS), -1, height, width).transpose(1, 2)
        return self.act0(y.reshape(batch, channels, height, width))

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self._esinb(x)
        x = x + (self.drop_path(y) if self.esinb_drop_path else y)
        x = x + self.drop_path(self.op(self.norm(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _maybe_checkpoint(self._forward, x, self.with_cp and self.training)


class HRVMambaModule(BaseModule):
    """One high-resolution module: DVSS blocks per branch, then the cross-branch fusion.

    Fusion into branch i (``fuse_layers.i.j``; HRFormer-style): j > i: 1x1 conv + BN, then
    bilinear up-sampling by 2^(j-i) and -- when the sizes still differ (inputs not divisible
    by 32) -- a bilinear resize to branch i's exact size (upstream's segmentation copy); j < i:
    (i - j) steps of depthwise 3x3/2 conv + BN + 1x1 conv + BN (+ ReLU but on the last);
    the sum is ReLU'd.

    Args:
        channels (Sequence[int]): widths of the branches.
        num_blocks (int): DVSS blocks per branch.
        drop_paths (Sequence[float]): rate of block k (the same in every branch).
        multiscale_output (bool): fuse into every branch, or only into branch 0.
        norm_cfg (dict): BatchNorm config of the fuse layers.
        block_kwargs (dict): :class:`HRVMambaBlock` arguments.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self, channels: Sequence[int], num_blocks: int, drop_paths: Sequence[float],
                 multiscale_output: bool, norm_cfg: dict, block_kwargs: dict,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.num_branches = len(channels)
        self.multiscale_output = multiscale_output
        self.branches = nn.ModuleList([
            nn.Sequential(*[HRVMambaBlock(c, drop_path=drop_paths[k],
                                          dcn_offset_dw=has_offset_dw(c), **block_kwargs)
                            for k in range(num_blocks)])
            for c in channels])
        self.fuse_layers = nn.ModuleList()
        for i in range(self.num_branches if multiscale_output else 1):
            row = []
            for j in range(self.num_branches):
                if j > i:
                    row.append(nn.Sequential(
                        _conv1x1(channels[j], channels[i]), build_batch_norm(norm_cfg, channels[i]),
                        nn.Upsample(scale_factor=2 ** (j - i), mode='bilinear',
                                    align_corners=False)))
                elif j == i:
                    row.append(None)
                else:
                    steps = []
                    for k in range(i - j):
                        last = k == i - j - 1
                        out = channels[i] if last else channels[j]
                        layers = [_conv3x3(channels[j], channels[j], stride=2, groups=channels[j]),
                                  build_batch_norm(norm_cfg, channels[j]),
                                  _conv1x1(channels[j], out), build_batch_norm(norm_cfg, out)]
                        if not last:
                            layers.append(nn.ReLU(inplace=False))
                        steps.append(nn.Sequential(*layers))
                    row.append(nn.Sequential(*steps))
            self.fuse_layers.append(nn.ModuleList(row))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, xs: List[torch.Tensor]) -> List[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        fused = []
        for i, row in enumerate(self.fuse_layers):
            y = 0
            for j, x in enumerate(xs):
                if j == i:
                    term = x
                else:
                    term = row[j](x)
                    if j > i and term.shape[2:] != xs[i].shape[2:]:
                        term = F.interpolate(term, size=xs[i].shape[2:], mode='bilinear',
                                             align_corners=False)
                y = y + term
            fused.append(self.relu(y))
        return fused


class HRFuseNeck(BaseModule):
    """Upstream's ``HRFuseScales`` (mmpretrain's, returning every level): per branch a
    Bottleneck to 128/256/512/1024 channels (``increase_layers``), a 3x3/2 ConvModule chain
    down the levels (``downsample_layers``), and ``final_layer`` (1x1 to 2048) on the last.
    Outputs 128 @ 1/4, 256 @ 1/8, 512 @ 1/16, 2048 @ 1/32.

    Args:
        in_channels (Sequence[int]): the four branch widths.
        norm_cfg (dict): BatchNorm config.
        with_cp (bool): recompute the Bottlenecks in backward.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self, in_channels: Sequence[int], norm_cfg: dict, with_cp: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if len(in_channels) != len(NECK_CHANNELS):
            raise ValueError(f'HRFuseNeck: needs {len(NECK_CHANNELS)} branches, got {in_channels}')
        self.increase_layers = nn.ModuleList([
            nn.Sequential(Bottleneck(c, out, norm_cfg, with_cp))
            for c, out in zip(in_channels, NECK_CHANNELS)])
        self.downsample_layers = nn.ModuleList([
            ConvBNReLU(NECK_CHANNELS[i], NECK_CHANNELS[i + 1], 3, 2, norm_cfg)
            for i in range(len(NECK_CHANNELS) - 1)])
        self.final_layer = ConvBNReLU(NECK_CHANNELS[-1], NECK_OUT_CHANNELS, 1, 1, norm_cfg)

    @property
    def out_channels(self) -> List[int]:
        return list(NECK_CHANNELS[:-1]) + [NECK_OUT_CHANNELS]

    def forward(self, xs: List[torch.Tensor]) -> List[torch.Tensor]:
        feat = self.increase_layers[0](xs[0])
        outs = [feat]
        for i, down in enumerate(self.downsample_layers):
            feat = down(feat) + self.increase_layers[i + 1](xs[i + 1])
            outs.append(feat)
        outs[-1] = self.final_layer(outs[-1])
        return outs


@register_model()
class HRVMamba(DenseBackbone):
    """HRVMamba backbone: HRNet's four parallel branches (1/4 to 1/32) of DVSS blocks.

    `HRVMamba <https://arxiv.org/abs/2410.03174>`_. Stem (two 3x3/2 convs, 64 channels) ->
    ``layer1`` (2 Bottlenecks to 4·c1) -> stage 2/3/4 (1/4/2 modules of 2/3/4 branches, 2 DVSS
    blocks per branch per module; widths C, 2C, 4C, 8C) with ``transition{1,2,3}`` opening
    each new branch (3x3/2 conv + BN + ReLU). Outputs: the four branches, or (``with_neck``)
    the HRFuseScales-style neck's 128/256/512/2048 maps; each returned map goes through its
    own LayerNorm ``outnorm{i}`` when ``with_out_norms``.

    Args:
        arch (str | dict): a preset of the paper:
            'tiny'/'t' (c1 32, C 16-32-64-128; pose T: 2.1M params, 1.1 GFLOPs at 256x192),
            'small'/'s' (c1 64, C 32-64-128-256; 8.0M, 3.3G),
            'base'/'b' (c1 64, C 80-160-320-640; 47.1M, 14.2G; the DCNv4 gets its depthwise
            offset conv, as upstream does for C % 80 == 0);
            or a dict with ``stage1_channels`` (c1) and ``channels`` (4 branch widths,
            multiples of 4), and optionally ``num_modules`` (per stage 2/3/4; (1, 4, 2)),
            ``num_blocks`` (DVSS blocks per branch per module; 2), ``stage1_blocks`` (2),
            ``ssm_ratio`` (2.0), ``mlp_ratio`` (2.0), ``d_state`` (1) and ``dcn_pointwise``
            (False: DCNv4 without ``value_proj``/``output_proj``, the layout the published
            sizes imply; True: the module as coded upstream). ``dict(preset='tiny',
            num_modules=(1, 1, 1))`` overrides a preset.
        in_channels (int): image channels. Default: 3.
        out_indices (Sequence[int]): outputs returned (branches 0-3, or neck levels 0-3).
            ``(0,)`` without the neck builds stage 4's last module with multi-scale output
            off, as upstream's pose model (only its ``fuse_layers.0``). Default: (0, 1, 2, 3).
        with_neck (bool): add upstream's segmentation neck (``neck.*``; outputs 128/256/512/
            2048 channels, for UperNet). Default: False.
        with_out_norms (bool): a LayerNorm ``outnorm{i}`` on every returned map (upstream's
            segmentation wrapper has them; its pose model has none). Default: True.
        frozen_stages (int): -1 none; 0 the stem; k = 1..4 also ``layer1`` + ``transition1``
            (k >= 1), ``stage2`` + ``transition2`` (k >= 2), ``stage3`` + ``transition3``
            (k >= 3), ``stage4`` (k = 4). The neck and output norms stay trainable.
            Default: -1.
        drop_path_rate (float): stochastic depth, upstream's rule: linspace(0, rate, 14) over
            the 2/8/4 block slots of stages 2/3/4 (num_blocks x num_modules); module m gets
            the next ``num_blocks`` rates and block k of *every* branch uses rate k.
            Upstream: pose T 0.0, S 0.1, B 0.2 (0.6 at 384x288); ADE20K B 0.15. Default: 0.1.
        esinb_drop_path (bool): stochastic depth on the multi-scale conv branch too
            (upstream's classification/segmentation code; its pose code: False). Default: True.
        ssm_drop_rate (float): Dropout after each SS2D. Default: 0.
        mlp_drop_rate (float): Dropout in each MLP. Default: 0.
        norm_cfg (dict): BatchNorm of the stem, layer1, transitions, fuse layers and neck
            (``BN`` or ``SyncBN``); the DVSS blocks always use LayerNorm. Default: BN.
        norm_eval (bool): keep BatchNorm layers in eval mode while training. Default: False.
        with_cp (bool): gradient checkpointing per DVSS block and Bottleneck. Default: False.
        kernel_backend (str): scan kernel backend ('auto', 'numba', 'torch', 'triton',
            'naive'). Default: 'auto'.
        dcn_backend (str): DCNv4 backend ('auto', 'grid_sample', 'torchvision', 'naive').
            Default: 'auto'.
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=...)`` loads an official
            file: ImageNet (``model``), pose or segmentation (``state_dict``, ``backbone.*``).
            Its DCNv4 layout must match ``dcn_pointwise`` (the error says which to set).
    """

    arch_zoo: Dict[str, dict] = {
        **dict.fromkeys(['t', 'tiny'], dict(stage1_channels=32, channels=[16, 32, 64, 128])),
        **dict.fromkeys(['s', 'small'], dict(stage1_channels=64, channels=[32, 64, 128, 256])),
        **dict.fromkeys(['b', 'base'], dict(stage1_channels=64, channels=[80, 160, 320, 640])),
    }
    essential_keys = ('stage1_channels', 'channels')
    # Optional arch keys and their values in every published model.
    arch_defaults = dict(num_modules=(1, 4, 2), num_blocks=2, stage1_blocks=2, ssm_ratio=2.0,
                         mlp_ratio=2.0, d_state=1, dcn_pointwise=False)

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 with_neck: bool = False,
                 with_out_norms: bool = True,
                 frozen_stages: int = -1,
                 drop_path_rate: float = 0.1,
                 esinb_drop_path: bool = True,
                 ssm_drop_rate: float = 0.0,
                 mlp_drop_rate: float = 0.0,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 kernel_backend: str = 'auto',
                 dcn_backend: str = 'auto',
                 init_cfg: Optional[Union[dict, list]] = None):
        super().__init__(out_indices=out_indices, frozen_stages=frozen_stages,
                         norm_eval=norm_eval, init_cfg=init_cfg)
        settings = self.resolve_arch(arch)
        channels = [int(c) for c in settings['channels']]
        num_modules = [int(m) for m in settings['num_modules']]
        if len(channels) != 4 or len(num_modules) != 3:
            raise ValueError(f'HRVMamba: arch needs 4 branch channels and 3 num_modules '
                             f'(stages 2-4), got {channels} and {num_modules}')
        if dcn_backend not in DCN_BACKENDS:
            raise ValueError(f'HRVMamba: dcn_backend must be one of {DCN_BACKENDS}, '
                             f'got {dcn_backend!r}')
        # frozen_stages counts layer1 and stages 2-4 (HRNet's numbering: k freezes up to
        # stage k); outputs are the four branches (or neck levels)
        self.num_stages = 4
        self._check_out_indices(4)
        self._check_frozen_stages(self.num_stages, '-1 none, 0 stem, 1 + layer1, 2-4 + stages 2-4')
        self.arch_settings = settings
        self.channels = channels
        self.in_channels = in_channels
        self.with_neck = with_neck
        self.with_out_norms = with_out_norms
        self.with_cp = with_cp
        self.drop_path_rate = drop_path_rate
        self.dcn_pointwise = bool(settings['dcn_pointwise'])
        self.norm_cfg = dict(norm_cfg)
        num_blocks = int(settings['num_blocks'])

        # stem (1/4) and stage 1
        self.conv1 = _conv3x3(in_channels, STEM_CHANNELS, stride=2)
        self.bn1 = build_batch_norm(norm_cfg, STEM_CHANNELS)
        self.conv2 = _conv3x3(STEM_CHANNELS, STEM_CHANNELS, stride=2)
        self.bn2 = build_batch_norm(norm_cfg, STEM_CHANNELS)
        self.relu = nn.ReLU(inplace=True)
        stage1_out = Bottleneck.expansion * int(settings['stage1_channels'])
        self.layer1 = nn.Sequential(*[
            Bottleneck(STEM_CHANNELS if i == 0 else stage1_out, stage1_out, norm_cfg, with_cp)
            for i in range(int(settings['stage1_blocks']))])

        # stages 2-4: upstream's stochastic depth rule (see the docstring)
        slots = [num_blocks * m for m in num_modules]
        rates = torch.linspace(0, drop_path_rate, sum(slots), device='cpu').tolist()
        block_kwargs = dict(esinb_drop_path=esinb_drop_path, mlp_ratio=settings['mlp_ratio'],
                            mlp_drop=mlp_drop_rate, ssm_drop=ssm_drop_rate, with_cp=with_cp,
                            d_state=settings['d_state'], ssm_ratio=settings['ssm_ratio'],
                            dcn_pointwise=self.dcn_pointwise, kernel_backend=kernel_backend,
                            dcn_backend=dcn_backend)
        # pose layout: only branch 0 leaves the last module
        self.multiscale_output = with_neck or set(self.out_indices) != {0}
        previous = [stage1_out]
        start = 0
        for s, modules in enumerate(num_modules):
            branches = channels[:s + 2]
            self.add_module(f'transition{s + 1}',
                            self._make_transition(previous, branches, norm_cfg))
            stage = []
            for m in range(modules):
                multiscale = self.multiscale_output or s < 2 or m < modules - 1
                stage_rates = rates[start + num_blocks * m:start + num_blocks * (m + 1)]
                stage.append(HRVMambaModule(branches, num_blocks, stage_rates, multiscale,
                                            norm_cfg, block_kwargs))
            self.add_module(f'stage{s + 2}', nn.Sequential(*stage))
            previous = branches
            start += slots[s]

        out_widths = channels
        if with_neck:
            self.neck = HRFuseNeck(channels, norm_cfg, with_cp)
            out_widths = self.neck.out_channels
        self.num_features = list(out_widths)
        if with_out_norms:
            for i in self.out_indices:
                self.add_module(f'outnorm{i}', LayerNorm2d(out_widths[i]))
        self._init_default_weights()
        self._freeze_stages()

    @staticmethod
    def _make_transition(previous: List[int], current: List[int], norm_cfg: dict) -> nn.ModuleList:
        """HRNet's transition: convert existing branches whose width changes (3x3/1), open
        the new branch from the last one (3x3/2); None where nothing changes."""
        layers = []
        for i, width in enumerate(current):
            if i < len(previous):
                layers.append(None if width == previous[i] else nn.Sequential(
                    _conv3x3(previous[i], width), build_batch_norm(norm_cfg, width),
                    nn.ReLU(inplace=True)))
            else:
                layers.append(nn.Sequential(nn.Sequential(
                    _conv3x3(previous[-1], width, stride=2), build_batch_norm(norm_cfg, width),
                    nn.ReLU(inplace=True))))
        return nn.ModuleList(layers)


    # -- forward -------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Images (N, in_channels, H, W) -> the maps of ``out_indices`` (NCHW, in order).

        Branch b is at ceil-halved 1/2^(b+2) resolution (250x333 -> 63x84, 32x42, 16x21, 8x11).
        """
        self._check_images(x)
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        ys = [self.layer1(x)]
        for s in range(2, 5):
            transition = getattr(self, f'transition{s - 1}')
            xs = [ys[i] if layer is None else layer(ys[min(i, len(ys) - 1)])
                  for i, layer in enumerate(transition)]
            ys = getattr(self, f'stage{s}')(xs)
        if self.with_neck:
            ys = self.neck(ys)
        outs = []
        for i in sorted(set(self.out_indices)):
            out = ys[i]
            if self.with_out_norms:
                out = getattr(self, f'outnorm{i}')(out)
            outs.append(out.contiguous())
        return tuple(outs)

    # -- init / freezing -----------------------------------------------------
    def _init_default_weights(self) -> None:
        # Linear layers (Linear2d projections, MLP) as the ImageNet training code: N(0, 0.02),
        # zero bias; convs as mmpose's HRNet: N(0, 0.001), zero bias; BN/LN: 1, 0. The
        # DCNv4 offset/mask projection starts at zero (no offsets, zero masks) and the SSM
        # parameters keep SS2D's own init.
        init_truncated_normal_(self, (nn.Linear,))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, DCNv4):
                nn.init.zeros_(m.offset_mask.weight)
                nn.init.zeros_(m.offset_mask.bias)

    def _stem_parts(self) -> list:
        return [self.conv1, self.bn1, self.conv2, self.bn2]

    def _stage_parts(self, index: int) -> list:
        # stage 0 = layer1 + transition1, 1-3 = stage2-4 (+ the transition after them)
        if index == 0:
            return [self.layer1, self.transition1]
        return [getattr(self, f'stage{index + 1}'), getattr(self, f'transition{index + 1}', None)]

    # -- checkpoints ---------------------------------------------------------
    # A file's DCNv4 layout and what it carries beyond the backbone.
    _POINTWISE = re.compile(r'\.op\.conv2d\.(value_proj|output_proj)\.')
    _DCN = re.compile(r'\.op\.conv2d\.offset_mask\.')
    _LPU_SE = re.compile(r'\.(cpe1|cpe2|op\.se)\.')
    _CLASSIFIER = re.compile(r'^(head\.|avgpool\.)')

    def convert_checkpoint(self, state_dict: StateDict) -> StateDict:
        """Official HRVMamba keys -> this module's (they are the same names).

        Takes ``backbone.*`` of a pose/segmentation file, drops the ImageNet classifier
        (``head.*``), drops what this build does not have (the neck and its ``outnorm*`` in a
        model without the neck, the fuse layers into branches 1-3 of stage 4's last module in
        the pose layout), and reshapes 1x1-conv weights of Linear2d layers to 2-D. A file
        whose DCNv4 layout (with or without ``value_proj``/``output_proj``) differs from
        ``dcn_pointwise`` is an error saying which setting loads it.
        """
        if any(k.startswith('backbone.') for k in state_dict):
            state_dict = {k[len('backbone.'):]: v for k, v in state_dict.items()
                          if k.startswith('backbone.')}
        self._check_layout(state_dict)
        own = self.state_dict()
        last = f'stage4.{len(self.stage4) - 1}.fuse_layers.'
        converted, dropped = {}, []
        for key, value in state_dict.items():
            if self._CLASSIFIER.match(key):
                dropped.append(key)
                continue
            if not self.with_neck and key.startswith(('neck.', 'outnorm')):
                dropped.append(key)
                continue
            if (not self.multiscale_output and key.startswith(last)
                    and not key.startswith(last + '0.')):
                dropped.append(key)
                continue
            target = own.get(key)
            if (target is not None and target.dim() == 2 and value.dim() == 4
                    and value.shape[2:] == (1, 1)):
                value = value.flatten(1)
            converted[key] = value
        if dropped:
            print_log(f'HRVMamba: dropped {len(dropped)} tensors of the file this build does not '
                      f'have (classifier, neck or multi-scale fuse layers), e.g. {dropped[:3]}',
                      logger='current')
        self._file_has_neck = any(k.startswith('neck.') for k in converted)
        return converted

    def _check_layout(self, state_dict: StateDict) -> None:
        has_dcn = any(self._DCN.search(k) for k in state_dict)
        pointwise = any(self._POINTWISE.search(k) for k in state_dict)
        if has_dcn and pointwise != self.dcn_pointwise:
            has = ('with value_proj/output_proj (upstream\'s module as coded)' if pointwise
                   else 'without value_proj/output_proj (the published model sizes)')
            raise CheckpointError(
                f'the file\'s DCNv4 layers are {has}, but this HRVMamba was built with '
                f'dcn_pointwise={self.dcn_pointwise}; build it with arch=dict(preset=..., '
                f'dcn_pointwise={pointwise}) to load this file unchanged.')
        if any(self._LPU_SE.search(k) for k in state_dict):
            raise CheckpointError(
                'the file is an HRVmamba_se_lpu model (cpe1/cpe2/op.se keys: upstream\'s ImageNet '
                'Nano and Tiny), which this HRVMamba does not build; use a plain HRVMamba file '
                '(ImageNet S/B, the COCO pose or ADE20K files).')

    def check_loaded(self, missing_keys: List[str], unexpected_keys: List[str],
                     filename: str) -> None:
        """Only ``outnorm*`` (and the neck, from a file without one) may start fresh; nothing
        of the file may be left over (a file of another size or model is an error)."""
        fresh = ('outnorm',) + (() if getattr(self, '_file_has_neck', True) else ('neck.',))
        missing = [k for k in missing_keys if not k.startswith(fresh)]
        if missing or unexpected_keys:
            parts = []
            if missing:
                parts.append(f'{len(missing)} backbone tensors missing from the file '
                             f'(e.g. {missing[:3]})')
            if unexpected_keys:
                parts.append(f'{len(unexpected_keys)} tensors of the file unused '
                             f'(e.g. {unexpected_keys[:3]})')
            raise CheckpointError(
                f'{filename!r} does not fit HRVMamba(channels={self.channels}, '
                f'num_modules={list(self.arch_settings["num_modules"])}): ' + '; '.join(parts)
                + '. Is it the file of another HRVMamba size (tiny/small/base) or another model?')

"""A VMamba-style dense backbone whose token mixer is MHS-VM's Multi-Head Scan.

The same frame as :class:`~mlla_mm.models.backbones.VMamba` (v2 layout: two-conv patch
embedding, 3x3 stride-2 conv downsampling, blocks ``x + DropPath(op(norm(x)))`` then
``x + DropPath(mlp(norm2(x)))``, one ``outnorm{i}`` per returned stage, the same key names),
with SS2D replaced by :class:`~mlla_mm.models.layers.mhs.MHSGatedMixer` -- the mixer of
MHS-VM's blocks: subspace heads scanning snake, zigzag, spiral and raster routes, weighed
by Scan Route Attention. So MHS and SS2D can be compared in one harness (UperNet, Mask
R-CNN). There are no ImageNet weights for it and no published dense-prediction numbers:
the presets mirror VMamba-T/S's widths and depths and train from scratch. The patch
embedding, the downsampling and the MLPs have VMamba's key names, so a VMamba checkpoint
fills everything but the mixers (``init_cfg`` Pretrained logs the ``op.*`` keys it left).
"""
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.utils.checkpoint as cp
from mmengine.model import BaseModule
from torch import nn

from ...registry import register_model
from ..layers.common import DropPath, LayerNorm2d, stochastic_depth_rates
from ..layers.mhs import MHSGatedMixer
from .base import DenseBackbone
from .vmamba import ChannelMlp, VMamba, VMambaDownsample, VMambaStem, VSSStage


class MHSVSSBlock(BaseModule):
    """VMamba's block with the MHS mixer: ``x + DropPath(op(norm(x)))``, then
    ``x + DropPath(mlp(norm2(x)))``; NCHW (channels-last memory) in and out.

    Args:
        embed_dims (int): channels C.
        drop_path (float): stochastic depth of both residual branches.
        mlp_ratio (float): MLP hidden width / C; 0 drops the MLP branch.
        with_cp (bool): recompute the block in backward to save memory.
        **mixer_kwargs: arguments of :class:`MHSGatedMixer` and MHS (heads,
            sra_threshold, d_state, ...).
    """

    def __init__(self, embed_dims: int, drop_path: float = 0.0, mlp_ratio: float = 4.0,
                 with_cp: bool = False, **mixer_kwargs):
        super().__init__()
        self.with_cp = with_cp
        self.norm = LayerNorm2d(embed_dims)
        self.op = MHSGatedMixer(embed_dims, **mixer_kwargs)
        self.drop_path = DropPath(drop_path)
        self.has_mlp = mlp_ratio > 0
        if self.has_mlp:
            self.norm2 = LayerNorm2d(embed_dims)
            self.mlp = ChannelMlp(embed_dims, int(embed_dims * mlp_ratio))

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        # the mixer works on (B, H, W, C): a free view of the channels-last map
        mixed = self.op(self.norm(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        x = x + self.drop_path(mixed)
        if self.has_mlp:
            x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.with_cp and self.training and x.requires_grad:
            return cp.checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)


@register_model()
class MHSVMamba(DenseBackbone):
    """VMamba-style backbone with Multi-Head Scan mixers, 4 NCHW maps at strides 4-32.

    Args:
        arch (str | dict): 'tiny'/'t' (C 96, depths 2-2-8-2, the VMamba-T frame) or
            'small'/'s' (96, 2-2-15-2), both with 4 heads (C, X, S, Z); or a dict with
            ``embed_dims`` (int C, stage i gets C·2^i, or a list of 4) and ``depths``, and
            optionally ``heads`` (int or names, see :class:`~mlla_mm.models.layers.mhs.MHS`),
            ``d_state``, ``dt_rank``, ``mlp_ratio``, ``conv_kernel`` (defaults 4, 16, None,
            4.0, 3); ``dict(preset='tiny', depths=[1, 1, 1, 1])`` overrides a preset.
        in_channels (int): image channels. Default: 3.
        sra_threshold (float): t of Scan Route Attention (MHS-VM trains with 0.0 or 0.5; with
            four routes cv lies in [2/3, 2], so any t < 2/3 only shifts the weights).
            Default: 0.5.
        out_indices (Sequence[int]): stages whose outputs are returned, each through its
            ``outnorm{i}``. Default: (0, 1, 2, 3).
        frozen_stages (int): -1 none; 0 the patch embedding; k >= 1 also stages 0..k-1.
        drop_path_rate (float): stochastic depth, linear over all blocks. Default: 0.2.
        with_cp (bool): gradient checkpointing per block. Default: False.
        norm_eval (bool): keep BatchNorm layers in eval mode (none here). Default: False.
        kernel_backend (str): routed-scan backend ('auto', 'numba', 'torch', 'triton',
            'naive'). Default: 'auto'.
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=...)`` loads our own
            checkpoints, or a VMamba one into everything but the mixers.
    """

    arch_zoo: Dict[str, dict] = {
        **dict.fromkeys(['t', 'tiny'], dict(embed_dims=96, depths=[2, 2, 8, 2])),
        **dict.fromkeys(['s', 'small'], dict(embed_dims=96, depths=[2, 2, 15, 2])),
    }
    essential_keys = ('embed_dims', 'depths')
    # The optional arch keys and their defaults.
    arch_defaults = dict(heads=4, d_state=16, dt_rank=None, mlp_ratio=4.0, conv_kernel=3)

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 in_channels: int = 3,
                 sra_threshold: float = 0.5,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 drop_path_rate: float = 0.2,
                 with_cp: bool = False,
                 norm_eval: bool = False,
                 kernel_backend: str = 'auto',
                 init_cfg: Optional[Union[dict, list]] = None):
        super().__init__(out_indices=out_indices, frozen_stages=frozen_stages,
                         norm_eval=norm_eval, init_cfg=init_cfg)
        settings = self.resolve_arch(arch)
        depths = list(settings['depths'])
        dims = settings['embed_dims']
        if isinstance(dims, int):
            dims = [dims * 2 ** i for i in range(len(depths))]
        if len(dims) != len(depths):
            raise ValueError(f'MHSVMamba: arch has {len(depths)} depths but {len(dims)} '
                             'embed_dims; give one width per stage (or an int C)')
        self.num_stages = len(depths)
        self._check_out_indices(self.num_stages)
        self._check_frozen_stages(self.num_stages)
        self.arch_settings = settings
        self.depths, self.embed_dims = depths, list(dims)
        self.num_features = self.embed_dims
        self.in_channels = in_channels
        mixer = dict(heads=settings['heads'], sra_threshold=sra_threshold,
                     d_state=settings['d_state'], dt_rank=settings['dt_rank'],
                     conv_kernel=settings['conv_kernel'], kernel_backend=kernel_backend)

        self.patch_embed = VMambaStem(in_channels, self.embed_dims[0])
        rates = stochastic_depth_rates(drop_path_rate, depths)
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            blocks = [MHSVSSBlock(self.embed_dims[i], drop_path=rates[i][j],
                                  mlp_ratio=settings['mlp_ratio'], with_cp=with_cp, **mixer)
                      for j in range(depth)]
            last = i == self.num_stages - 1
            downsample = (nn.Identity() if last
                          else VMambaDownsample(self.embed_dims[i], self.embed_dims[i + 1]))
            self.layers.append(VSSStage(blocks, downsample))
        for i in self.out_indices:
            self.add_module(f'outnorm{i}', LayerNorm2d(self.embed_dims[i]))
        self._init_default_weights()
        self._freeze_stages()

    # VMamba's frame, shared as is: init, the parts frozen_stages freezes, key conversion
    _init_default_weights = VMamba._init_default_weights
    _stem_parts = VMamba._stem_parts
    _stage_parts = VMamba._stage_parts
    LEGACY_RENAMES, DROPPED = VMamba.LEGACY_RENAMES, VMamba.DROPPED
    convert_checkpoint = VMamba.convert_checkpoint

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """(N, C_in, H, W) -> the ``out_indices`` stage maps; any H, W (the routes are built
        for each map size)."""
        self._check_images(x)
        # channels-last memory throughout (shapes NCHW), as VMamba
        x = self.patch_embed(x.contiguous(memory_format=torch.channels_last))
        outs = []
        for i, layer in enumerate(self.layers):
            x = layer.blocks(x)
            if i in self.out_indices:
                outs.append(getattr(self, f'outnorm{i}')(x).contiguous())
            x = layer.downsample(x)
        return tuple(outs)

"""MambaOut (Gated CNN blocks, no SSM) as a dense-prediction backbone.

Paper: "MambaOut: Do We Really Need Mamba for Vision?" (Yu & Wang, CVPR 2025).
Same module tree and parameter names as the official ``MambaOut`` of
yuweihao/MambaOut ``models/mambaout.py`` (``downsample_layers.*``, ``stages.i.j.*``),
so the released ImageNet files ``mambaout_{femto,kobe,tiny,small,base}.pth`` load
unchanged. What the dense version adds: a LayerNorm per returned stage (``norm{i}``,
"add LN for outputs of backbone at each stage", the authors' advice for detection and
segmentation) and NCHW outputs. Every conv is 3x3/2 with padding 1 or depthwise with
'same' padding, so any input size works without padding.

Internally the stages run channels-last ``(B, H, W, C)`` as upstream: LayerNorm and the
linear layers act on the last dim, only the depthwise conv permutes.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.utils.checkpoint as cp
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch import nn

from ...registry import register_model
from ...utils.checkpoint import CheckpointError, StateDict
from ..layers.common import DropPath, init_truncated_normal_, stochastic_depth_rates
from ..layers.linear import Linear
from .base import DenseBackbone

# Upstream builds every norm as LayerNorm(eps=1e-6).
LN_EPS = 1e-6


def _layer_norm(dims: int) -> nn.LayerNorm:
    return nn.LayerNorm(dims, eps=LN_EPS)


class MambaOutStem(BaseModule):
    """Two 3x3 stride-2 convs (C/2 then C channels) with LayerNorms and a GELU between.

    NCHW image in, channels-last ``(B, H/4, W/4, C)`` out (ceil division).
    Keys ``conv1``, ``norm1``, ``conv2``, ``norm2`` as upstream's ``StemLayer``.

    Args:
        in_channels: image channels.
        out_channels: C.
        init_cfg: mmengine init config.
    """

    def __init__(self, in_channels: int, out_channels: int, init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.conv1 = nn.Conv2d(in_channels, out_channels // 2, 3, stride=2, padding=1)
        self.norm1 = _layer_norm(out_channels // 2)
        self.act = nn.GELU()
        self.conv2 = nn.Conv2d(out_channels // 2, out_channels, 3, stride=2, padding=1)
        self.norm2 = _layer_norm(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(self.conv1(x).permute(0, 2, 3, 1))
        x = self.act(x).permute(0, 3, 1, 2)
        return self.norm2(self.conv2(x).permute(0, 2, 3, 1))


class MambaOutDownsample(BaseModule):
    """3x3 stride-2 conv then LayerNorm, channels-last in and out (keys ``conv``, ``norm``).

    Args:
        in_channels: channels of the previous stage.
        out_channels: channels of the next stage.
        init_cfg: mmengine init config.
    """

    def __init__(self, in_channels: int, out_channels: int, init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1)
        self.norm = _layer_norm(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1))


class GatedCNNBlock(BaseModule):
    """Gated CNN block (Mamba's block without the SSM), channels-last ``(B, H, W, C)``::

        g, i, c = split(fc1(LN(x)), [hidden, hidden - C_conv, C_conv])
        x = x + drop_path(fc2(GELU(g) * cat(i, dwconv(c))))

    ``hidden = int(expansion_ratio * C)``; the depthwise ``kernel_size`` conv runs on
    only ``C_conv = int(conv_ratio * C)`` channels (the rest pass as identity).

    Args:
        embed_dims: channels C.
        expansion_ratio: hidden width / C (8/3 upstream).
        kernel_size: depthwise conv kernel (7 upstream).
        conv_ratio: fraction of C that goes through the conv (1.0 upstream).
        drop_path_rate: stochastic depth of the residual branch.
        init_cfg: mmengine init config.
    """

    def __init__(self, embed_dims: int, expansion_ratio: float = 8 / 3, kernel_size: int = 7,
                 conv_ratio: float = 1.0, drop_path_rate: float = 0.0,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        hidden = int(expansion_ratio * embed_dims)
        conv_channels = int(conv_ratio * embed_dims)
        if not 0 < conv_channels <= hidden:
            raise ValueError(f'GatedCNNBlock: conv_ratio {conv_ratio} gives {conv_channels} conv '
                             f'channels; need 0 < conv channels <= hidden width {hidden}')
        self.split_sizes = (hidden, hidden - conv_channels, conv_channels)
        self.norm = _layer_norm(embed_dims)
        self.fc1 = Linear(embed_dims, 2 * hidden)
        self.act = nn.GELU()
        self.conv = nn.Conv2d(conv_channels, conv_channels, kernel_size,
                              padding=kernel_size // 2, groups=conv_channels)
        self.fc2 = Linear(hidden, embed_dims)
        self.drop_path = DropPath(drop_path_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, identity, conv_in = torch.split(self.fc1(self.norm(x)), self.split_sizes, dim=-1)
        conv_out = self.conv(conv_in.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        x_mixed = self.fc2(self.act(gate) * torch.cat((identity, conv_out), dim=-1))
        return x + self.drop_path(x_mixed)


@register_model()
class MambaOut(DenseBackbone):
    """MambaOut backbone: 4 stages of Gated CNN blocks, 4 NCHW maps at strides 4-32.

    `MambaOut: Do We Really Need Mamba for Vision? <https://arxiv.org/abs/2405.07992>`_.
    Stage i is ``downsample_layers[i]`` (the 2-conv stem for i = 0, a 3x3/2 conv + LN
    otherwise) followed by ``stages[i]`` (``depths[i]`` Gated CNN blocks of ``dims[i]``
    channels); ``norm{i}`` (LayerNorm, eps 1e-6) normalises each returned map.

    Args:
        arch (str | dict): a preset, exactly upstream's models (IN-1k top-1):
            'femto' (dims 48-96-192-288, depths 3-3-9-3; 78.9),
            'kobe' (48-96-192-288, 3-3-15-3; 80.0),
            'tiny'/'t' (96-192-384-576, 3-3-9-3; 82.7),
            'small'/'s' (96-192-384-576, 3-4-27-3; 84.1),
            'base'/'b' (128-256-512-768, 3-4-27-3; 84.2);
            or a dict with ``dims`` (one width per stage) and ``depths``;
            ``dict(preset='tiny', depths=[1, 1, 1, 1])`` overrides a preset.
        in_channels (int): image channels. Default: 3.
        expansion_ratio (float): Gated CNN hidden width / C. Default: 8/3 (upstream).
        kernel_size (int): depthwise conv kernel. Default: 7 (upstream).
        conv_ratio (float): fraction of channels through the conv. Default: 1.0 (upstream).
        drop_path_rate (float): stochastic depth, linearly increasing over all blocks.
            The authors' UperNet rates: T 0.3, S 0.3 or 0.4, B 0.6. Default: 0.3.
        out_indices (Sequence[int]): stages whose outputs are returned, each through
            its own ``norm{i}``. Default: (0, 1, 2, 3).
        frozen_stages (int): -1 freezes nothing; 0 freezes the stem
            (``downsample_layers[0]``); k >= 1 freezes stages 0..k-1 (their
            downsampling layer, blocks and ``norm{i}``). Frozen parts get
            ``requires_grad=False`` and stay in eval mode. Default: -1.
        norm_eval (bool): keep BatchNorm layers in eval mode while training. MambaOut
            has only LayerNorms (no running statistics), so this changes nothing;
            accepted for the common backbone interface. Default: False.
        with_cp (bool): gradient checkpointing per block when grad is enabled
            (saves memory, costs a second forward). Default: False.
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=PATH_OR_URL)``
            loads an official MambaOut file (its classifier ``head.*`` and final
            ``norm.*`` dropped; ``norm0..3`` start fresh). Any other missing or
            unexpected key is an error naming it (wrong ``arch``, not a MambaOut file).
    """

    arch_zoo: Dict[str, dict] = {
        'femto': dict(dims=[48, 96, 192, 288], depths=[3, 3, 9, 3]),
        'kobe': dict(dims=[48, 96, 192, 288], depths=[3, 3, 15, 3]),
        **dict.fromkeys(('t', 'tiny'), dict(dims=[96, 192, 384, 576], depths=[3, 3, 9, 3])),
        **dict.fromkeys(('s', 'small'), dict(dims=[96, 192, 384, 576], depths=[3, 4, 27, 3])),
        **dict.fromkeys(('b', 'base'), dict(dims=[128, 256, 512, 768], depths=[3, 4, 27, 3])),
    }
    essential_keys = ('dims', 'depths')

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 in_channels: int = 3,
                 expansion_ratio: float = 8 / 3,
                 kernel_size: int = 7,
                 conv_ratio: float = 1.0,
                 drop_path_rate: float = 0.3,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 init_cfg: Optional[Union[dict, list]] = None):
        super().__init__(out_indices=out_indices, frozen_stages=frozen_stages,
                         norm_eval=norm_eval, init_cfg=init_cfg)
        settings = self.resolve_arch(arch)
        dims = [int(d) for d in settings['dims']]
        depths = [int(d) for d in settings['depths']]
        if len(dims) != len(depths) or not depths:
            raise ValueError(f'MambaOut: dims {dims} and depths {depths} must be non-empty '
                             'lists of the same length (one entry per stage)')
        self.num_stages = len(depths)
        self._check_out_indices(self.num_stages)
        self._check_frozen_stages(self.num_stages, '-1 none, 0 stem, k stages 0..k-1')
        if kernel_size % 2 != 1:
            raise ValueError(f'MambaOut: kernel_size must be odd (same padding), got {kernel_size}')
        self.in_channels = in_channels
        self.dims = dims
        self.num_features = dims
        self.depths = depths
        self.with_cp = with_cp

        self.downsample_layers = nn.ModuleList(
            [MambaOutStem(in_channels, dims[0])]
            + [MambaOutDownsample(dims[i - 1], dims[i]) for i in range(1, self.num_stages)])
        rates = stochastic_depth_rates(drop_path_rate, depths)
        self.stages = nn.ModuleList([
            nn.Sequential(*[
                GatedCNNBlock(dims[i], expansion_ratio, kernel_size, conv_ratio, rates[i][j])
                for j in range(depths[i])])
            for i in range(self.num_stages)])
        for i in self.out_indices:
            self.add_module(f'norm{i}', _layer_norm(dims[i]))

        self._init_default_weights()
        self._freeze_stages()

    def _init_default_weights(self) -> None:
        # Upstream's init: truncated normal (std 0.02) for conv and linear weights, zero
        # biases, unit LayerNorms.
        init_truncated_normal_(self, (nn.Conv2d, nn.Linear))

    def _stem_parts(self) -> list:
        return [self.downsample_layers[0]]

    def _stage_parts(self, index: int) -> list:
        return [self.downsample_layers[index], self.stages[index],
                getattr(self, f'norm{index}', None)]

    # -- checkpoints ---------------------------------------------------------
    def convert_checkpoint(self, state_dict: StateDict) -> StateDict:
        """Drop the classifier (``head.*``) and the final ``norm.*`` of an official file."""
        kept = {k: v for k, v in state_dict.items() if not k.startswith(('head.', 'norm.'))}
        if len(kept) < len(state_dict):
            print_log(f'MambaOut: dropped {len(state_dict) - len(kept)} classifier keys '
                      '(head.*, norm.*) of the official checkpoint', logger='current')
        return kept

    def check_loaded(self, missing_keys: List[str], unexpected_keys: List[str],
                     filename: str) -> None:
        """Only the dense additions ``norm{i}`` may be missing; nothing may be left over.

        A MambaOut file of another size shares many names with this model (e.g. femto
        vs kobe differ only in stage-2 depth), so a partial load would pass silently.
        """
        fresh = tuple(f'norm{i}.' for i in self.out_indices)
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
                f'{filename!r} does not fit MambaOut(arch dims={self.dims}, '
                f'depths={self.depths}): ' + '; '.join(parts) + '. Is it the file of another '
                'MambaOut size? Pick the matching arch (femto/kobe/tiny/small/base).')

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Images ``(B, in_channels, H, W)`` -> ``(B, dims[i], ceil(H/2^(i+2)), ...)`` per
        ``out_indices``."""
        self._check_images(x)
        outs = []
        for i in range(self.num_stages):
            x = self.downsample_layers[i](x)
            for block in self.stages[i]:
                # Non-reentrant checkpointing also covers a block whose input needs no
                # grad (frozen earlier stages) while its own parameters do.
                if self.with_cp and torch.is_grad_enabled():
                    x = cp.checkpoint(block, x, use_reentrant=False)
                else:
                    x = block(x)
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(x)
                outs.append(out.permute(0, 3, 1, 2).contiguous())
        return tuple(outs)

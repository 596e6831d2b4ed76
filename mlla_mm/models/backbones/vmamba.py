"""VMamba (v2 release: VMamba-T/S/B) as a dense-prediction backbone.

Same module tree and parameter names as the official ``Backbone_VSSM`` with
``norm_layer='ln2d'``, ``patchembed_version='v2'``, ``downsample_version='v3'``
and ``forward_type='v05_noz'``, so the official ImageNet checkpoints load
unchanged. Every map is NCHW-shaped, held in channels-last memory inside the backbone
(returned as contiguous NCHW); no size needs padding.
"""
import functools
import re
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModule, Sequential
from torch import nn

from ...registry import register_model
from ...utils.checkpoint import StateDict
from ..layers.common import (CheckpointedBlock, DropPath, LayerNorm2d, init_truncated_normal_,
                             stochastic_depth_rates)
from ..layers.recompute import gelu_linear
from ..layers.ss2d import SS2D, Linear2d
from .base import DenseBackbone


class ChannelMlp(BaseModule):
    """fc1 -> GELU -> fc2 over the channels of an NCHW map (``mlp.fc1/fc2``).

    Args:
        embed_dims (int): input/output channels.
        hidden_dims (int): hidden channels.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self, embed_dims: int, hidden_dims: int, init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.fc1 = Linear2d(embed_dims, hidden_dims)
        self.act = nn.GELU()
        self.fc2 = Linear2d(hidden_dims, embed_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        if Linear2d.is_channels_last(h):
            # channels-last (VMamba's own layout): fc2(GELU(h)) keeping only h for the
            # backward (GELU recomputed there), as Linear2d's GEMM over the pixels
            out = gelu_linear(h.permute(0, 2, 3, 1), self.fc2.weight, self.fc2.bias)
            return out.permute(0, 3, 1, 2)
        return self.fc2(self.act(h))


class VSSBlock(CheckpointedBlock):
    """VMamba block: ``x + DropPath(op(LN(x)))``, then ``x + DropPath(MLP(LN(x)))``; NCHW.

    The token mixer ``op`` is :class:`SS2D`; a subclass swaps it by overriding
    :meth:`build_mixer` (MHS-VM's block, :class:`~.mhs_vmamba.MHSVSSBlock`).

    Args:
        embed_dims (int): channels C.
        drop_path (float): stochastic depth rate of both residual branches.
        mlp_ratio (float): MLP hidden width / C; 0 drops the MLP branch.
        with_cp (bool): recompute the block in backward to save memory.
        init_cfg (dict, optional): mmengine init config.
        **mixer_kwargs: arguments of the mixer (:class:`SS2D`: d_state, ssm_ratio, ...).
    """

    def __init__(self, embed_dims: int, drop_path: float = 0.0, mlp_ratio: float = 4.0,
                 with_cp: bool = False, init_cfg: Optional[dict] = None, **mixer_kwargs):
        super().__init__(init_cfg=init_cfg)
        self.with_cp = with_cp
        self.norm = LayerNorm2d(embed_dims)
        self.op = self.build_mixer(embed_dims, **mixer_kwargs)
        self.drop_path = DropPath(drop_path)
        self.has_mlp = mlp_ratio > 0
        if self.has_mlp:
            self.norm2 = LayerNorm2d(embed_dims)
            self.mlp = ChannelMlp(embed_dims, int(embed_dims * mlp_ratio))

    def build_mixer(self, embed_dims: int, **mixer_kwargs) -> nn.Module:
        """The token mixer, NCHW (channels-last memory) in and out."""
        return SS2D(embed_dims, **mixer_kwargs)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.op(self.norm(x)))
        if self.has_mlp:
            x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x


class VSSStage(BaseModule):
    """``blocks`` (the VSS blocks of one stage) and the ``downsample`` after them.

    Args:
        blocks (list of nn.Module): the stage's blocks, run in order.
        downsample (nn.Module): the downsampling after them (Identity for the last stage).
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self, blocks: List[nn.Module], downsample: nn.Module,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.blocks = Sequential(*blocks)
        self.downsample = downsample


class VMambaStem(Sequential):
    """Two 3×3 stride-2 convs with LN2d (VMamba's ``patchembed_version='v2'``).

    The Identity slots keep the official indices: conv ``0``, norm ``2``,
    GELU ``4``, conv ``5``, norm ``7``.

    Args:
        in_channels (int): image channels.
        embed_dims (int): output channels C (C/2 after the first conv).
    """

    def __init__(self, in_channels: int, embed_dims: int):
        half = embed_dims // 2
        super().__init__(
            nn.Conv2d(in_channels, half, 3, stride=2, padding=1), nn.Identity(),
            LayerNorm2d(half), nn.Identity(), nn.GELU(),
            nn.Conv2d(half, embed_dims, 3, stride=2, padding=1), nn.Identity(),
            LayerNorm2d(embed_dims))


class VMambaDownsample(Sequential):
    """3×3 stride-2 conv + LN2d (``downsample_version='v3'``; keys ``1.*``, ``3.*``).

    Args:
        in_channels (int): channels of the previous stage.
        out_channels (int): channels of the next stage.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Identity(), nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1),
            nn.Identity(), LayerNorm2d(out_channels))


class VMambaFrame(DenseBackbone):
    """VMamba's frame around a block: the v2 patch embedding (:class:`VMambaStem`), stages
    of blocks each followed by a :class:`VMambaDownsample` (none after the last), and one
    ``outnorm{i}`` per returned stage; 4 NCHW maps at strides 4-32.

    Not registered: the base of :class:`VMamba` (SS2D blocks) and
    :class:`~.mhs_vmamba.MHSVMamba` (MHS blocks), which resolve their ``arch`` and call
    :meth:`_build_frame` with their block. Everything else -- forward, the parts
    ``frozen_stages`` freezes, the init and the official key conversion -- is this frame's.
    """

    def _build_frame(self, settings: dict, in_channels: int, drop_path_rate: float,
                     make_block: Callable[..., nn.Module]) -> None:
        """Check the widths, set the contract's attributes and build the modules.

        ``settings`` holds ``embed_dims`` (int C, stage i gets C·2^i, or one width per
        stage) and ``depths``; block j of stage i is ``make_block(width_i, drop_path=rate)``
        with the rates rising linearly to ``drop_path_rate`` over all blocks.
        """
        name = type(self).__name__
        depths = list(settings['depths'])
        embed_dims = settings['embed_dims']
        if isinstance(embed_dims, int):
            embed_dims = [embed_dims * 2 ** i for i in range(len(depths))]
        if len(embed_dims) != len(depths):
            raise ValueError(f'{name}: arch has {len(depths)} depths but {len(embed_dims)} '
                             'embed_dims; give one width per stage (or an int C)')
        self.arch_settings = settings
        self.depths = depths
        self.embed_dims = list(embed_dims)
        self.num_features = self.embed_dims
        self.num_stages = len(depths)
        self._check_out_indices(self.num_stages)
        self._check_frozen_stages(self.num_stages)
        self.in_channels = in_channels

        self.patch_embed = VMambaStem(in_channels, self.embed_dims[0])
        rates = stochastic_depth_rates(drop_path_rate, depths)
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            dims = self.embed_dims[i]
            blocks = [make_block(dims, drop_path=rates[i][j]) for j in range(depth)]
            last = i == self.num_stages - 1
            downsample = (nn.Identity() if last
                          else VMambaDownsample(dims, self.embed_dims[i + 1]))
            self.layers.append(VSSStage(blocks, downsample))
        for i in self.out_indices:
            self.add_module(f'outnorm{i}', LayerNorm2d(self.embed_dims[i]))
        self._init_default_weights()
        self._freeze_stages()

    def _init_default_weights(self) -> None:
        # As VSSM._init_weights: N(0, 0.02) Linear(2d) weights, zero biases, unit LayerNorms;
        # convs keep PyTorch's init; the mixers' SSM parameters keep their own.
        init_truncated_normal_(self)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Images ``(B, in_channels, H, W)`` -> ``(B, C_i, ceil(H/2^(i+2)), ...)`` per
        ``out_indices``; any H, W."""
        self._check_images(x)
        # Channels-last memory throughout (shapes stay NCHW): the 1x1 projections become
        # GEMMs over pixels and the scan kernel reads every map with the channels innermost.
        x = self.patch_embed(x.contiguous(memory_format=torch.channels_last))
        outs = []
        for i, layer in enumerate(self.layers):
            x = layer.blocks(x)
            if i in self.out_indices:
                outs.append(getattr(self, f'outnorm{i}')(x).contiguous())
            # The downsampling sees the un-normed stage output.
            x = layer.downsample(x)
        return tuple(outs)

    def _stem_parts(self) -> list:
        return [self.patch_embed]

    def _stage_parts(self, index: int) -> list:
        return [self.layers[index], getattr(self, f'outnorm{index}', None)]

    # -- checkpoints ---------------------------------------------------------
    # Old VMamba checkpoints use these names (renamed in VSSM._load_from_state_dict).
    LEGACY_RENAMES = (
        (re.compile(r'^patch_embed\.proj\.'), 'patch_embed.0.'),
        (re.compile(r'^patch_embed\.norm\.'), 'patch_embed.2.'),
        (re.compile(r'^(layers\.\d+\.blocks\.\d+)\.ln_1\.'), r'\1.norm.'),
        (re.compile(r'^(layers\.\d+\.blocks\.\d+)\.self_attention\.'), r'\1.op.'),
    )
    # Classification-only entries: the head, its norm, a fixed-size pos_embed.
    DROPPED = re.compile(r'^(classifier\.|head\.|norm\.|pos_embed$)')

    def convert_checkpoint(self, state_dict: StateDict) -> StateDict:
        """Official VMamba (ImageNet or ``Backbone_VSSM``) keys -> this module's keys.

        Renames legacy keys, drops the classifier, and reshapes (out, in, 1, 1)
        conv weights of the Linear2d layers to (out, in).
        """
        own = self.state_dict()
        converted = {}
        for key, value in state_dict.items():
            for pattern, repl in self.LEGACY_RENAMES:
                key = pattern.sub(repl, key)
            if self.DROPPED.match(key):
                continue
            target = own.get(key)
            if (target is not None and target.dim() == 2 and value.dim() == 4
                    and value.shape[2:] == (1, 1)):
                value = value.flatten(1)
            converted[key] = value
        return converted


@register_model()
class VMamba(VMambaFrame):
    """VMamba backbone (v2: VSS blocks with the SS2D mixer), 4 NCHW maps at strides 4-32.

    `VMamba: Visual State Space Model <https://arxiv.org/abs/2401.10166>`_.
    The presets are the official v2 ImageNet models whose checkpoints the
    detection/segmentation results start from.

    Args:
        arch (str | dict): 'tiny'/'t' (C 96, depths 2-2-8-2, ssm_ratio 1.0),
            'small'/'s' (96, 2-2-15-2, 2.0) or 'base'/'b' (128, 2-2-15-2, 2.0);
            or a dict with ``embed_dims`` (int C, stage i gets C·2^i, or a list
            of 4) and ``depths``, and optionally ``ssm_ratio``, ``d_state``,
            ``dt_rank`` (None: ceil(Ci/16)), ``mlp_ratio``, ``conv_kernel``,
            ``directions`` (defaults: the v2 values 2.0, 1, None, 4.0, 3, 4);
            ``dict(preset='tiny', depths=[1, 1, 1, 1])`` overrides a preset.
        in_channels (int): image channels. Default: 3.
        out_indices (Sequence[int]): stages whose outputs are returned; each
            gets its own ``outnorm{i}`` (LayerNorm over channels). Default: (0, 1, 2, 3).
        frozen_stages (int): -1 freezes nothing; 0 freezes the patch embedding;
            k >= 1 also freezes stages 0..k-1 (their blocks, the downsampling
            after them and their ``outnorm``). Default: -1.
        drop_path_rate (float): stochastic depth, linearly increasing over all
            blocks. Official: T 0.2, S 0.3, B 0.6. Default: 0.2.
        with_cp (bool): gradient checkpointing per block. Default: False.
        norm_eval (bool): keep BatchNorm layers in eval mode (VMamba has none;
            kept for the common interface). Default: False.
        kernel_backend (str): scan kernel backend: 'auto' (Triton on CUDA, the
            fused numba kernels on CPU when numba is installed, else 'torch'),
            'numba', 'torch', 'triton' or 'naive'. Default: 'auto'.
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=...)``
            loads an official VMamba checkpoint (``model`` entry, classifier
            dropped, legacy names renamed; the ``outnorm*`` start fresh).
    """

    arch_zoo: Dict[str, dict] = {
        **dict.fromkeys(['t', 'tiny'], dict(embed_dims=96, depths=[2, 2, 8, 2], ssm_ratio=1.0)),
        **dict.fromkeys(['s', 'small'], dict(embed_dims=96, depths=[2, 2, 15, 2], ssm_ratio=2.0)),
        **dict.fromkeys(['b', 'base'], dict(embed_dims=128, depths=[2, 2, 15, 2], ssm_ratio=2.0)),
    }
    essential_keys = ('embed_dims', 'depths')
    # The optional arch keys and the official v2 settings they default to.
    arch_defaults = dict(ssm_ratio=2.0, d_state=1, dt_rank=None, mlp_ratio=4.0,
                         conv_kernel=3, directions=4)

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 in_channels: int = 3,
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
        self._build_frame(settings, in_channels, drop_path_rate, functools.partial(
            VSSBlock, mlp_ratio=settings['mlp_ratio'], with_cp=with_cp,
            d_state=settings['d_state'], ssm_ratio=settings['ssm_ratio'],
            dt_rank=settings['dt_rank'], conv_kernel=settings['conv_kernel'],
            directions=settings['directions'], kernel_backend=kernel_backend))

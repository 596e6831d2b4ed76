"""VM-UNet with Multi-Head Scan blocks (MHS-VM), the encoder-decoder of a segmentor.

`MHS-VM <https://arxiv.org/abs/2406.05992>`_ (code: PixDeep/MHS-VM, ``models/vmunet/``)
replaces the SS2D of `VM-UNet <https://arxiv.org/abs/2402.02491>`_ (JCruan519/VM-UNet) with
the MHS module. Same module tree and parameter names as upstream's ``VSSM`` (the official
files' keys without their ``vmunet.`` prefix), so ``best_3h.pth`` / ``best_4h.pth`` load
unchanged once their aliased duplicate keys are dropped (:func:`convert_mhsvm_checkpoint`).

Layout (channels-last ``(B, H, W, C)`` inside, as upstream; NCHW in and out)::

    patch_embed (4x4/4 conv + LN) -> C0 @ 1/4
    layers[i]    = blocks (depths[i] MHS blocks) then, for i < 3, PatchMerging2D -> 2C @ 1/2
    layers_up[0] = blocks                                          (C3 @ 1/32)
    layers_up[i] = PatchExpand2D (-> C/2 @ x2) then blocks, input x + skip  (i = 1, 2, 3)
    final_up     = x4 patch expand (Linear C0 -> 4 C0, 4x4 shuffle, LN(C0 / 4)) -> C0/4 @ 1/1

Skips are additive: ``layers_up[i]`` (i >= 1) takes the decoder map plus the input of
encoder layer ``4 - i``. The 1x1 classifier (upstream ``final_conv``) is the decode head's
``conv_seg`` (:class:`mlla_mm.models.segmentors.VMUNetHead`).

Sizes: upstream needs H and W divisible by 32 (its merging drops odd rows, and the skips then
no longer match). This backbone takes any size: it pads the image on the right and bottom to
a multiple of 32 (zeros: the mean after normalisation) and crops every returned map back to
the image (``ceil(H / stride)`` rows at stride 4-32, exactly H at stride 1).
"""
import re
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModule, Sequential
from torch import nn

from ...registry import register_model
from ...utils.checkpoint import CheckpointError, StateDict
from ..layers.common import CheckpointedBlock, DropPath, init_truncated_normal_
from ..layers.linear import Linear
from ..layers.mhs import MHS, MHSGatedMixer
from .base import DenseBackbone
from .vmamba import VSSStage


class PatchEmbed(BaseModule):
    """4x4 stride-4 conv then LayerNorm: NCHW image -> ``(B, H/4, W/4, C)``
    (keys ``proj``, ``norm``).

    Args:
        in_channels (int): image channels.
        embed_dims (int): output channels C.
        patch_size (int): kernel and stride of the conv. Default: 4.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self, in_channels: int, embed_dims: int, patch_size: int = 4,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.proj = nn.Conv2d(in_channels, embed_dims, patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


class PatchMerging(BaseModule):
    """2x2 neighbours concatenated (order (0,0), (1,0), (0,1), (1,1)), LayerNorm(4C), then
    Linear 4C -> 2C without bias: ``(B, H, W, C) -> (B, H/2, W/2, 2C)``; H, W even.

    Args:
        embed_dims (int): input channels C.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self, embed_dims: int, init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.reduction = Linear(4 * embed_dims, 2 * embed_dims, bias=False)
        self.norm = nn.LayerNorm(4 * embed_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]],
                      dim=-1)
        return self.reduction(self.norm(x))


def _shuffle_up(x: torch.Tensor, scale: int) -> torch.Tensor:
    """``(B, H, W, s*s*c) -> (B, s*H, s*W, c)`` with channel index ``(p1 * s + p2) * c + c'``
    going to offset (p1, p2) (einops ``b h w (p1 p2 c) -> b (h p1) (w p2) c``, not
    ``F.pixel_shuffle``'s channel order)."""
    b, h, w, ch = x.shape
    c = ch // (scale * scale)
    x = x.reshape(b, h, w, scale, scale, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h * scale, w * scale, c)


class PatchExpand(BaseModule):
    """Linear ``in_dims -> scale² * out_dims`` (no bias), pixel shuffle by ``scale``, then
    LayerNorm(out_dims) (upstream's ``PatchExpand2D`` with in = 2 out, scale 2, and its
    ``Final_PatchExpand2D`` with in = 4 out, scale 4; keys ``expand``, ``norm``).

    Args:
        in_dims (int): input channels.
        out_dims (int): output channels.
        scale (int): the upsampling factor.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self, in_dims: int, out_dims: int, scale: int, init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.scale = scale
        self.expand = Linear(in_dims, scale * scale * out_dims, bias=False)
        self.norm = nn.LayerNorm(out_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(_shuffle_up(self.expand(x), self.scale))


class MHSBlock(CheckpointedBlock):
    """``x + DropPath(self_attention(ln_1(x)))`` on ``(B, H, W, C)``; no MLP (upstream's
    VM-UNet ``VSSBlock``).

    Args:
        embed_dims (int): channels C.
        drop_path (float): stochastic depth rate.
        with_cp (bool): recompute the block in backward to save memory.
        init_cfg (dict, optional): mmengine init config.
        **mixer_kwargs: arguments of :class:`MHSGatedMixer` / MHS.
    """

    def __init__(self, embed_dims: int, drop_path: float = 0.0, with_cp: bool = False,
                 init_cfg: Optional[dict] = None, **mixer_kwargs):
        super().__init__(init_cfg=init_cfg)
        self.with_cp = with_cp
        self.ln_1 = nn.LayerNorm(embed_dims)
        self.self_attention = MHSGatedMixer(embed_dims, **mixer_kwargs)
        self.drop_path = DropPath(drop_path)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.self_attention(self.ln_1(x)))


class DecoderLayer(BaseModule):
    """``upsample`` (a :class:`PatchExpand`; Identity in the first layer) then ``blocks``.
    (An encoder layer is a :class:`~.vmamba.VSSStage`: ``blocks`` then ``downsample``.)

    Args:
        blocks (list of nn.Module): the layer's blocks, run in order.
        upsample (nn.Module): the expansion before them.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self, blocks: List[nn.Module], upsample: nn.Module,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.upsample = upsample
        self.blocks = Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.upsample(x))


# -- official files ---------------------------------------------------------------------
#: Entries of the official files that alias another entry (the same tensor registered twice
#: upstream: ``MHSM.x_ssproj_W`` is ``x_ssproj.weight``; ``ScanHead.scanning.seq2seq_engine``
#: is ``ScanHead.mambaeng``).
MHSVM_ALIAS_KEYS = re.compile(r'(\.mhs\.x_ssproj_W$|\.scanhead_[A-Z]\.scanning\.seq2seq_engine\.)')
#: The 1x1 classifier of the official files, and where it lives here (the decode head's).
MHSVM_CLASSIFIER = 'final_conv.'


def convert_mhsvm_checkpoint(state_dict: StateDict, logger=None) -> Tuple[StateDict, StateDict]:
    """Official MHS-VM state dict -> (VMUNet backbone keys, classifier keys).

    Strips the wrapper's ``vmunet.`` prefix, drops the aliased duplicates
    (:data:`MHSVM_ALIAS_KEYS`, each equal to the entry it aliases) with a note, and returns the
    classifier ``final_conv.{weight,bias}`` apart (``conv_seg.*`` of the decode head). Keys of
    our own layout pass through unchanged.
    """
    backbone, classifier, dropped = {}, {}, []
    for key, value in state_dict.items():
        if key.startswith('vmunet.'):
            key = key[len('vmunet.'):]
        if MHSVM_ALIAS_KEYS.search(key):
            dropped.append(key)
        elif key.startswith(MHSVM_CLASSIFIER):
            classifier['conv_seg.' + key[len(MHSVM_CLASSIFIER):]] = value
        else:
            backbone[key] = value
    if dropped:
        print_log(f'MHS-VM checkpoint: dropped {len(dropped)} aliased duplicate entries '
                  '(mhs.x_ssproj_W = mhs.x_ssproj.weight, scanhead_*.scanning.seq2seq_engine.* '
                  '= scanhead_*.mambaeng.*)', logger=logger or 'current')
    return backbone, classifier


@register_model()
class VMUNet(DenseBackbone):
    """VM-UNet with MHS blocks (MHS-VM): encoder, decoder with additive skips, x4 expansion.

    Returns the decoder's maps (NCHW): ``out_indices`` picks among the outputs of
    ``layers_up[0..3]`` (strides 32, 16, 8, 4; channels C3..C0) and of ``final_up`` (index 4,
    stride 1, C0 / 4 channels: what the classifier reads). Any input size works (padded to a
    multiple of 32 and cropped back, see the module docstring).

    Args:
        arch (str | dict): '4h' (C 96, encoder depths 2-2-2-2, decoder 2-2-2-1, 4 heads C, X,
            S, Z: the released ``best_4h.pth``) or '3h' (the same with 3 heads C, X, S:
            ``best_3h.pth``); or a dict with ``embed_dims`` (int C, widths C·2^i, or a list
            of 4), ``depths`` (encoder), ``decoder_depths`` and ``heads`` (see
            :class:`~mlla_mm.models.layers.mhs.MHS`), optionally ``d_state`` (16),
            ``dt_rank`` (None: ceil(s/16)), ``with_proj`` (True);
            ``dict(preset='4h', embed_dims=16)`` overrides a preset.
        in_channels (int): image channels. Default: 3.
        sra_threshold (float): the threshold t of Scan Route Attention in every block:
            upstream trains with 0.5 (ISIC 2018) or 0.0 (ISIC 2017) and its test script
            evaluates with 0.4. Default: 0.0.
        out_indices (Sequence[int]): which decoder outputs to return (0-3: ``layers_up``,
            4: ``final_up``). Default: (4,).
        frozen_stages (int): -1 freezes nothing; 0 the patch embedding; k >= 1 also encoder
            layers 0..k-1 (blocks and the merging after them). Default: -1.
        drop_path_rate (float): stochastic depth, linear from 0 over the encoder blocks and
            from the same rate back to 0 over the decoder blocks. Default: 0.2 (upstream).
        with_cp (bool): gradient checkpointing per block. Default: False.
        norm_eval (bool): keep BatchNorm layers in eval mode (none here; common interface).
        kernel_backend (str): backend of the routed scan kernel ('auto', 'numba', 'torch',
            'triton', 'naive'). Default: 'auto'.
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=...)`` loads an
            official MHS-VM file (``best_3h.pth`` / ``best_4h.pth``) or one of ours: aliased
            duplicates and the classifier are dropped with a note, any other key that does
            not match raises.
    """

    arch_zoo: Dict[str, dict] = {
        '4h': dict(embed_dims=96, depths=[2, 2, 2, 2], decoder_depths=[2, 2, 2, 1], heads=4),
        '3h': dict(embed_dims=96, depths=[2, 2, 2, 2], decoder_depths=[2, 2, 2, 1], heads=3),
    }
    essential_keys = ('embed_dims', 'depths', 'decoder_depths', 'heads')
    # The optional arch keys and their defaults (upstream's ``config_setting.py``).
    arch_defaults = dict(d_state=16, dt_rank=None, with_proj=True)
    # what the four merging steps need of the padded input
    size_divisor = 32

    def __init__(self,
                 arch: Union[str, dict] = '4h',
                 in_channels: int = 3,
                 sra_threshold: float = 0.0,
                 out_indices: Sequence[int] = (4,),
                 frozen_stages: int = -1,
                 drop_path_rate: float = 0.2,
                 with_cp: bool = False,
                 norm_eval: bool = False,
                 kernel_backend: str = 'auto',
                 init_cfg: Optional[Union[dict, list]] = None):
        super().__init__(out_indices=out_indices, frozen_stages=frozen_stages,
                         norm_eval=norm_eval, init_cfg=init_cfg)
        settings = self.resolve_arch(arch)
        depths, decoder_depths = list(settings['depths']), list(settings['decoder_depths'])
        dims = settings['embed_dims']
        if isinstance(dims, int):
            dims = [dims * 2 ** i for i in range(4)]
        dims = list(dims)
        if len(depths) != 4 or len(decoder_depths) != 4 or len(dims) != 4:
            raise ValueError(f'VMUNet: embed_dims, depths and decoder_depths need 4 entries '
                             f'each (4 levels), got {dims}, {depths}, {decoder_depths}')
        if any(dims[i + 1] != 2 * dims[i] for i in range(3)) or dims[0] % 4:
            raise ValueError(f'VMUNet: widths must double per level (patch merging maps C to '
                             f'2C) and C0 must be divisible by 4 (the x4 expansion), got {dims}')
        self.arch_settings = settings
        self.embed_dims = dims
        self.depths, self.decoder_depths = depths, decoder_depths
        self.in_channels = in_channels
        # the output candidates: layers_up[0..3] (C3 .. C0), then final_up (C0 / 4)
        self.num_features = dims[::-1] + [dims[0] // 4]
        # frozen_stages counts the encoder layers
        self.num_stages = len(depths)
        self._check_out_indices(len(self.num_features))
        self._check_frozen_stages(self.num_stages,
                                  '-1 none, 0 patch embedding, i + encoder layers 0..i-1')
        mixer = dict(heads=settings['heads'], sra_threshold=sra_threshold,
                     d_state=settings['d_state'], dt_rank=settings['dt_rank'],
                     with_proj=settings['with_proj'], kernel_backend=kernel_backend)

        self.patch_embed = PatchEmbed(in_channels, dims[0])
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            start = sum(depths[:i])
            blocks = [MHSBlock(dims[i], rates[start + j], with_cp=with_cp, **mixer)
                      for j in range(depth)]
            merging = PatchMerging(dims[i]) if i < 3 else nn.Identity()
            self.layers.append(VSSStage(blocks, merging))
        rates = torch.linspace(0, drop_path_rate, sum(decoder_depths)).tolist()[::-1]
        self.layers_up = nn.ModuleList()
        for i, depth in enumerate(decoder_depths):
            level, start = 3 - i, sum(decoder_depths[:i])
            blocks = [MHSBlock(dims[level], rates[start + j], with_cp=with_cp, **mixer)
                      for j in range(depth)]
            upsample = PatchExpand(dims[level + 1], dims[level], 2) if i > 0 else nn.Identity()
            self.layers_up.append(DecoderLayer(blocks, upsample))
        self.final_up = PatchExpand(dims[0], dims[0] // 4, 4)
        self._init_default_weights()
        self._freeze_stages()

    @property
    def sra_threshold(self) -> float:
        return self.layers[0].blocks[0].self_attention.mhs.sra_threshold

    @sra_threshold.setter
    def sra_threshold(self, value: float) -> None:
        """Set t of Scan Route Attention in every block (e.g. 0.4 to test as upstream)."""
        for m in self.modules():
            if isinstance(m, MHS):
                m.sra_threshold = value

    def _init_default_weights(self) -> None:
        # upstream VSSM._init_weights: N(0, 0.02) Linear weights (its trunc_normal_ cuts at
        # +-2 = 100 std), zero biases, unit LayerNorms; convs keep PyTorch's init; the SSM
        # parameters keep Mamba's.
        init_truncated_normal_(self)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Images ``(B, in_channels, H, W)`` -> the ``out_indices`` decoder maps, in index
        order, cropped to ``ceil(H / stride)`` x ``ceil(W / stride)``; any H, W."""
        self._check_images(x)
        height, width = x.shape[2:]
        pad_h, pad_w = -height % self.size_divisor, -width % self.size_divisor
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        x = self.patch_embed(x)
        skips = []
        for layer in self.layers:
            skips.append(x)
            x = layer.downsample(layer.blocks(x))
        outs = []
        for i, layer in enumerate(self.layers_up):
            x = layer(x if i == 0 else x + skips[-i])
            if i in self.out_indices:
                outs.append(self._crop(x, height, width, 2 ** (5 - i)))
        if 4 in self.out_indices:
            outs.append(self._crop(self.final_up(x), height, width, 1))
        return tuple(outs)

    @staticmethod
    def _crop(x: torch.Tensor, height: int, width: int, stride: int) -> torch.Tensor:
        """(B, h, w, C) channels-last -> contiguous NCHW of the image's ceil(H/s) x ceil(W/s)."""
        x = x[:, :-(-height // stride), :-(-width // stride)]
        return x.permute(0, 3, 1, 2).contiguous()

    def _stem_parts(self) -> list:
        return [self.patch_embed]

    def _stage_parts(self, index: int) -> list:
        # an encoder layer: its blocks and the merging after them
        return [self.layers[index]]

    # -- checkpoints ---------------------------------------------------------
    def convert_checkpoint(self, state_dict: StateDict) -> StateDict:
        """Official MHS-VM (``vmunet.*``) or our keys -> this backbone's keys; the aliased
        duplicates and the classifier (``final_conv``, the decode head's) are dropped."""
        state_dict = {k[len('backbone.'):] if k.startswith('backbone.') else k: v
                      for k, v in state_dict.items() if not k.startswith('decode_head.')}
        backbone, classifier = convert_mhsvm_checkpoint(state_dict)
        if classifier:
            print_log('VMUNet: the classifier final_conv.* is the decode head\'s (conv_seg); '
                      'not loaded into the backbone', logger='current')
        return backbone

    def check_loaded(self, missing_keys: list, unexpected_keys: list, filename: str) -> None:
        """Strict: an MHS-VM file must fill every tensor, and nothing else may be left."""
        if not (missing_keys or unexpected_keys):
            return
        hint = ''
        if any('scanhead_Z' in k for k in unexpected_keys):
            hint = " The file has a Z head: it is a 4-head file, use arch='4h'."
        elif any('scanhead_Z' in k for k in missing_keys):
            hint = " The file has no Z head: it is a 3-head file, use arch='3h'."
        raise CheckpointError(
            f'{filename} does not match VMUNet (arch {self.arch_settings}): '
            f'{len(missing_keys)} missing keys {missing_keys[:6]}, {len(unexpected_keys)} '
            f'unexpected keys {unexpected_keys[:6]}.{hint}')

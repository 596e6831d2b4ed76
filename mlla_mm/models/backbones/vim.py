"""Vim (Vision Mamba, hustvl/Vim) as a dense-prediction backbone.

A plain (single-stride) model: patch embedding, absolute position embedding, 24
bidirectional Mamba blocks with RMSNorm and the official "add -> norm -> mixer"
residual ordering, then a simple pyramid (``fpn1..fpn4``, as Vim's segmentation
code) giving maps at strides 4, 8, 16, 32 for FPN / UperNet.

Module and parameter names are the official ones (``patch_embed.proj``, ``pos_embed``,
``layers.i.norm``, ``layers.i.mixer.*``, ``norm_f``), so the ImageNet checkpoints
load after :meth:`Vim.convert_checkpoint` drops the classifier, class token and RoPE
buffers and removes the class token's row of ``pos_embed``.
"""
import logging
import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch import nn

from ...registry import register_model
from ...utils.checkpoint import CheckpointError, StateDict
from ..layers.bimamba import BiMambaMixer
from ..layers.common import DropPath
from ..layers.rmsnorm import RMSNorm
from ..layers.simple_pyramid import SimplePyramid, pyramid_branches
from .base import DenseBackbone

FEATURE_TYPES = ('mixer', 'residual')
CLS_TOKEN_POSITIONS = ('middle', 'first', 'none')


class VimBlock(BaseModule):
    """Vim block in the official fused "add + norm" ordering.

    ``forward(hidden, residual)`` returns ``(mixer(norm(r)), r)`` with
    ``r = residual + DropPath(hidden)`` (``r = hidden`` for the first block), so
    the drop path of block i acts on the *previous* block's mixer output. The
    residual stream is kept in float32 (``residual_in_fp32=True`` upstream).

    Args:
        embed_dims: token width C.
        drop_path: stochastic-depth rate applied to the incoming mixer output.
        with_cp: recompute the block in backward to save memory.
        init_cfg: mmengine init config.
        **mixer_kwargs: arguments of :class:`BiMambaMixer`.
    """

    def __init__(self, embed_dims: int, drop_path: float = 0.0, with_cp: bool = False,
                 init_cfg: Optional[dict] = None, **mixer_kwargs):
        super().__init__(init_cfg=init_cfg)
        self.with_cp = with_cp
        self.norm = RMSNorm(embed_dims, eps=1e-5)
        self.mixer = BiMambaMixer(embed_dims, **mixer_kwargs)
        self.drop_path = DropPath(drop_path)

    def _forward(self, hidden: torch.Tensor, residual: Optional[torch.Tensor]):
        residual = hidden if residual is None else residual + self.drop_path(hidden)
        residual = residual.float()
        return self.mixer(self.norm(residual).to(hidden.dtype)), residual

    def forward(self, hidden: torch.Tensor, residual: Optional[torch.Tensor] = None):
        if self.with_cp and self.training and hidden.requires_grad:
            return cp.checkpoint(self._forward, hidden, residual, use_reentrant=False)
        return self._forward(hidden, residual)


class VimPatchEmbed(BaseModule):
    """Conv patch embedding (``proj``) that pads the image right/bottom first.

    The image is padded so that the token grid is ``ceil(H / stride) x ceil(W / stride)``
    (padded size ``stride * (grid - 1) + patch``), i.e. token (i, j) sits at stride
    ``stride`` whatever the input size.

    Args:
        in_channels: image channels.
        embed_dims: token width C.
        patch_size: kernel size of ``proj``.
        stride: stride of ``proj`` (the token stride).
        init_cfg: mmengine init config.
    """

    def __init__(self, in_channels: int, embed_dims: int, patch_size: int, stride: int,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.patch_size = patch_size
        self.stride = stride
        self.proj = nn.Conv2d(in_channels, embed_dims, kernel_size=patch_size, stride=stride)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        h, w = x.shape[-2:]
        grid = (math.ceil(h / self.stride), math.ceil(w / self.stride))
        pad_h = self.stride * (grid[0] - 1) + self.patch_size - h
        pad_w = self.stride * (grid[1] - 1) + self.patch_size - w
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        x = self.proj(x)
        return x.flatten(2).transpose(1, 2), grid


@register_model()
class Vim(DenseBackbone):
    """Vision Mamba (Vim) backbone for dense prediction.

    Args:
        arch: a preset (``'tiny'``/``'ti'``/``'t'``: C=192, ``'small'``/``'s'``: 384,
            ``'base'``/``'b'``: 768; depth 24 each) or a dict with ``embed_dims`` and
            ``depth`` and optionally ``d_state`` (16), ``expand`` (2), ``d_conv`` (4),
            ``dt_rank`` ('auto' = ceil(C/16)); ``dict(preset='tiny', depth=12)``
            overrides a preset.
        patch_size: patch (kernel) size of the patch embedding, 16 officially.
        patch_stride: stride of the patch embedding; None means ``patch_size``
            (8 for the official "+" models). The token maps have this stride.
        in_channels: image channels.
        pretrain_img_size: image size of the ImageNet model; it fixes the grid of the
            stored ``pos_embed`` ((size - patch) // stride + 1 per side, 14 for
            224/16). The grid is bicubic-interpolated (align_corners=False) to the
            actual token grid at every forward, as the official seg code does once at init.
        out_indices: indices of the blocks whose outputs are returned (negative
            indices count from the end). With the adapter there must be 1 or 4.
        feature_type: what a block's "output" is. ``'mixer'``: the mixer output
            ``hidden`` of the block (the official segmentation default,
            ``use_residual_as_feature=False``); ``'residual'``: the residual stream
            after adding that block's mixer output (``use_residual_as_feature=True``).
        final_norm: if True, the feature of the last block is replaced by
            ``norm_f(residual stream after the last block)``, i.e. the token
            features the classifier sees (requires the last block in
            ``out_indices``); the official dense models never apply ``norm_f`` (False).
        with_adapter: if True (default) the outputs go through the simple pyramid
            ``fpn1..fpn4`` and come out at strides 4, 8, 16, 32 (for patch stride 16:
            ConvT-BN-GELU-ConvT, ConvT, Identity, MaxPool 2; for stride 8: ConvT,
            Identity, MaxPool 2, MaxPool 4). If False the raw block maps are returned
            (all at the patch stride).
        drop_path_rate: stochastic depth; block i drops the previous mixer output with
            rate ``[0] + linspace(0, rate, depth)`` [i], as upstream.
        with_cp: gradient checkpointing of every block.
        frozen_stages: -1 freezes nothing; 0 freezes patch_embed and pos_embed;
            k >= 1 also freezes blocks 0..k-1.
        norm_eval: keep the adapter's BatchNorm in eval mode while training.
        pretrained_cls_token_position: where the class token's ``pos_embed`` row is in
            the checkpoint loaded through ``init_cfg``: ``'middle'`` (row M//2, the
            published ``*_midclstok`` checkpoints), ``'first'`` (row 0, older
            checkpoints such as the ones upstream's seg configs used) or ``'none'``.
            A ``pos_embed`` whose row count is a perfect square has no class row and
            is used as is.
        kernel_backend: scan backend passed to :mod:`mlla_kernels` (``'auto'``,
            ``'naive'``, ``'torch'``, ``'numba'``, ``'triton'``).
        init_cfg: ``dict(type='Pretrained', checkpoint=...)`` loads an official
            ImageNet checkpoint (the ``model`` entry) through :meth:`convert_checkpoint`.
    """

    arch_zoo: Dict[str, dict] = {
        **dict.fromkeys(['tiny', 'ti', 't'], dict(embed_dims=192, depth=24)),
        **dict.fromkeys(['small', 's'], dict(embed_dims=384, depth=24)),
        **dict.fromkeys(['base', 'b'], dict(embed_dims=768, depth=24)),
    }
    essential_keys = ('embed_dims', 'depth')
    # The optional arch keys and the official settings (of every variant) they default to.
    arch_defaults = dict(d_state=16, expand=2, d_conv=4, dt_rank='auto')

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 patch_size: int = 16,
                 patch_stride: Optional[int] = None,
                 in_channels: int = 3,
                 pretrain_img_size: int = 224,
                 out_indices: Sequence[int] = (5, 11, 17, 23),
                 feature_type: str = 'mixer',
                 final_norm: bool = False,
                 with_adapter: bool = True,
                 drop_path_rate: float = 0.1,
                 with_cp: bool = False,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 pretrained_cls_token_position: str = 'middle',
                 kernel_backend: str = 'auto',
                 init_cfg: Optional[Union[dict, list]] = None):
        super().__init__(out_indices=out_indices, frozen_stages=frozen_stages,
                         norm_eval=norm_eval, init_cfg=init_cfg)
        settings = self.resolve_arch(arch)
        if feature_type not in FEATURE_TYPES:
            raise ValueError(f'Vim: feature_type must be one of {FEATURE_TYPES}, '
                             f'got {feature_type!r}')
        if pretrained_cls_token_position not in CLS_TOKEN_POSITIONS:
            raise ValueError(f'Vim: pretrained_cls_token_position must be one of '
                             f'{CLS_TOKEN_POSITIONS}, got {pretrained_cls_token_position!r}')
        patch_stride = patch_size if patch_stride is None else patch_stride
        if patch_stride > patch_size:
            raise ValueError(f'Vim: patch_stride ({patch_stride}) larger than patch_size '
                             f'({patch_size}) would skip pixels')
        self.in_channels = in_channels
        self.embed_dims = settings['embed_dims']
        self.depth = settings['depth']
        self.num_features = [self.embed_dims] * self.depth
        self.num_stages = self.depth   # what frozen_stages counts: blocks
        self.patch_stride = patch_stride
        self.feature_type = feature_type
        self.final_norm = final_norm
        self.with_adapter = with_adapter
        self.pretrained_cls_token_position = pretrained_cls_token_position
        self._check_out_indices(self.depth)
        self._check_frozen_stages(self.num_stages, '-1 none, 0 patch_embed + pos_embed, '
                                                   'k also blocks 0..k-1')
        if final_norm and self.depth - 1 not in self.out_indices:
            raise ValueError('Vim: final_norm=True normalises the last block\'s feature, but '
                             f'out_indices {self.out_indices} do not include the last block '
                             f'({self.depth - 1})')
        if with_adapter and len(self.out_indices) not in (1, 4):
            raise ValueError(f'Vim: the adapter makes 4 maps from 1 or 4 block outputs, got '
                             f'out_indices {self.out_indices}; pass 1 or 4 indices or '
                             'with_adapter=False')

        self.patch_embed = VimPatchEmbed(in_channels, self.embed_dims, patch_size, patch_stride)
        grid = (pretrain_img_size - patch_size) // patch_stride + 1
        self.pretrain_grid = (grid, grid)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid, self.embed_dims))

        # [0] + linspace(0, rate, depth): block i drops the previous block's mixer output
        steps = max(self.depth - 1, 1)
        rates = [0.0] + [drop_path_rate * i / steps for i in range(self.depth)]
        self.layers = nn.ModuleList([
            VimBlock(self.embed_dims, drop_path=rates[i], with_cp=with_cp,
                     d_state=settings['d_state'], d_conv=settings['d_conv'],
                     expand=settings['expand'], dt_rank=settings['dt_rank'],
                     kernel_backend=kernel_backend)
            for i in range(self.depth)])
        if final_norm:
            self.norm_f = RMSNorm(self.embed_dims, eps=1e-5)
            self.final_drop_path = DropPath(drop_path_rate)
        if with_adapter:
            # Official seg key names: the branches are this module's fpn1..fpn4.
            for i, branch in enumerate(pyramid_branches(self.embed_dims, patch_stride)):
                self.add_module(f'fpn{i + 1}', branch)
        self._freeze_stages()

    @property
    def out_channels(self) -> List[int]:
        """Channels of each returned map, in order: ``embed_dims`` for each (4 maps with the
        adapter, one per ``out_indices`` entry without)."""
        return [self.embed_dims] * (4 if self.with_adapter else len(self.out_indices))

    # -- init / checkpoints --------------------------------------------------
    def _init_default_weights(self) -> None:
        """Upstream's init: trunc-normal pos_embed, LeCun-normal patch conv, Mamba's SSM init,
        zero Linear biases (except dt_proj) and out_proj scaled by 1/sqrt(depth)."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        proj = self.patch_embed.proj
        fan_in = proj.in_channels * proj.kernel_size[0] * proj.kernel_size[1]
        nn.init.trunc_normal_(proj.weight, std=math.sqrt(1.0 / fan_in) / 0.87962566103423978)
        nn.init.zeros_(proj.bias)
        for layer in self.layers:
            mixer = layer.mixer
            for lin in (mixer.in_proj, mixer.out_proj):
                if lin.bias is not None:
                    nn.init.zeros_(lin.bias)
            nn.init.kaiming_uniform_(mixer.out_proj.weight, a=math.sqrt(5))
            with torch.no_grad():
                mixer.out_proj.weight /= math.sqrt(self.depth)

    def convert_checkpoint(self, state_dict: StateDict) -> StateDict:
        """Official ImageNet ``model`` dict -> this module's keys.

        Drops ``head.*``, ``cls_token`` (and ``dist_token``/double cls tokens),
        ``rope.*`` buffers, and ``norm_f.*`` unless ``final_norm``; removes the class
        token's row of ``pos_embed`` (see ``pretrained_cls_token_position``) and
        bicubic-resizes the grid to this model's ``pretrain_img_size`` grid if they
        differ; drops ``patch_embed.proj.*`` (with a warning) if the patch size differs.
        """
        drop_prefixes = ('head.', 'rope.', 'cls_token', 'dist_token')
        if not self.final_norm:
            drop_prefixes += ('norm_f.',)
        out = {k: v for k, v in state_dict.items() if not k.startswith(drop_prefixes)}
        if 'pos_embed' in out:
            out['pos_embed'] = self._convert_pos_embed(out['pos_embed'])
        proj_w = out.get('patch_embed.proj.weight')
        if proj_w is not None and proj_w.shape != self.patch_embed.proj.weight.shape:
            print_log(f'Vim: checkpoint patch_embed.proj.weight {tuple(proj_w.shape)} does not '
                      f'match {tuple(self.patch_embed.proj.weight.shape)}; the patch embedding '
                      'is left at its random init', logger="current", level=logging.WARNING)
            out.pop('patch_embed.proj.weight')
            out.pop('patch_embed.proj.bias', None)
        return out

    def _convert_pos_embed(self, pos_embed: torch.Tensor) -> torch.Tensor:
        if pos_embed.dim() != 3 or pos_embed.shape[0] != 1:
            raise CheckpointError(f'Vim: pos_embed of shape {tuple(pos_embed.shape)}, '
                                  'expected (1, rows, C)')
        rows = pos_embed.shape[1]
        side = math.isqrt(rows)
        if side * side != rows:  # one class-token row to remove
            side = math.isqrt(rows - 1)
            if side * side != rows - 1:
                raise CheckpointError(f'Vim: pos_embed has {rows} rows: neither a square grid '
                                      'nor a square grid plus one class-token row')
            position = self.pretrained_cls_token_position
            if position == 'none':
                raise CheckpointError(
                    f"Vim: pos_embed has {rows} = {side}x{side} + 1 rows but "
                    "pretrained_cls_token_position='none'; set it to 'middle' (the published "
                    "*_midclstok checkpoints) or 'first' (older checkpoints)")
            cls_row = (rows - 1) // 2 if position == 'middle' else 0
            pos_embed = torch.cat([pos_embed[:, :cls_row], pos_embed[:, cls_row + 1:]], dim=1)
        if (side, side) != self.pretrain_grid:
            print_log(f'Vim: resizing checkpoint pos_embed grid {side}x{side} to '
                      f'{self.pretrain_grid[0]}x{self.pretrain_grid[1]}', logger='current')
            pos_embed = resize_pos_embed(pos_embed, (side, side), self.pretrain_grid)
        return pos_embed

    # -- forward -------------------------------------------------------------
    def _stem_parts(self) -> list:
        return [self.patch_embed, self.pos_embed]

    def _stage_parts(self, index: int) -> list:
        return [self.layers[index]]

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """(B, 3, H, W) -> tuple of NCHW maps (strides 4/8/16/32 with the adapter)."""
        self._check_images(x)
        tokens, (gh, gw) = self.patch_embed(x)
        tokens = tokens + resize_pos_embed(self.pos_embed, self.pretrain_grid, (gh, gw))

        wanted = set(self.out_indices)
        residual_mode = self.feature_type == 'residual'
        feats: Dict[int, torch.Tensor] = {}
        hidden, residual = tokens, None
        for i, layer in enumerate(self.layers):
            hidden, residual = layer(hidden, residual)
            # residual now = stream after block i-1's mixer (incl. its drop path)
            if residual_mode and i - 1 in wanted:
                feats[i - 1] = residual
            if not residual_mode and i in wanted:
                feats[i] = hidden
        last = self.depth - 1
        if self.final_norm:
            feats[last] = self.norm_f(residual + self.final_drop_path(hidden))
        elif residual_mode and last in wanted:
            feats[last] = residual + hidden  # upstream last_layer_process='add'

        batch = x.shape[0]
        maps = [feats[i].to(x.dtype).transpose(1, 2).reshape(batch, self.embed_dims, gh, gw)
                for i in self.out_indices]
        if not self.with_adapter:
            return tuple(maps)
        branches = [getattr(self, f'fpn{i + 1}') for i in range(4)]
        return SimplePyramid.apply_branches(branches, maps)


def resize_pos_embed(pos_embed: torch.Tensor, src_grid: Tuple[int, int],
                     dst_grid: Tuple[int, int]) -> torch.Tensor:
    """(1, Hs*Ws, C) row-major grid -> (1, Hd*Wd, C), bicubic, align_corners=False."""
    if tuple(src_grid) == tuple(dst_grid):
        return pos_embed
    channels = pos_embed.shape[-1]
    grid = pos_embed.reshape(1, src_grid[0], src_grid[1], channels).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=tuple(dst_grid), mode='bicubic', align_corners=False)
    return grid.to(pos_embed.dtype).flatten(2).transpose(1, 2)

"""A VMamba-style dense backbone whose token mixer is MHS-VM's Multi-Head Scan.

VMamba's frame (:class:`~mlla_mm.models.backbones.vmamba.VMambaFrame`, shared with
:class:`~mlla_mm.models.backbones.VMamba`: two-conv patch embedding, 3x3 stride-2 conv
downsampling, blocks ``x + DropPath(op(norm(x)))`` then ``x + DropPath(mlp(norm2(x)))``, one
``outnorm{i}`` per returned stage, the same key names), with SS2D replaced by
:class:`~mlla_mm.models.layers.mhs.MHSGatedMixer2d` -- the mixer of
MHS-VM's blocks: subspace heads scanning snake, zigzag, spiral and raster routes, weighed
by Scan Route Attention. So MHS and SS2D can be compared in one harness (UperNet, Mask
R-CNN). There are no ImageNet weights for it and no published dense-prediction numbers:
the presets mirror VMamba-T/S's widths and depths and train from scratch. The patch
embedding, the downsampling and the MLPs have VMamba's key names, so a VMamba checkpoint
fills everything but the mixers (``init_cfg`` Pretrained logs the ``op.*`` keys it left).
"""
import functools
from typing import Dict, Optional, Sequence, Union

from torch import nn

from ...registry import register_model
from ..layers.mhs import MHSGatedMixer2d
from .vmamba import VMambaFrame, VSSBlock


class MHSVSSBlock(VSSBlock):
    """VMamba's block with the MHS mixer (:class:`MHSGatedMixer2d`) as ``op``:
    ``x + DropPath(op(norm(x)))``, then ``x + DropPath(mlp(norm2(x)))``; NCHW.

    Args:
        embed_dims (int): channels C.
        drop_path (float): stochastic depth of both residual branches.
        mlp_ratio (float): MLP hidden width / C; 0 drops the MLP branch.
        with_cp (bool): recompute the block in backward to save memory.
        init_cfg (dict, optional): mmengine init config.
        **mixer_kwargs: arguments of :class:`MHSGatedMixer2d` and MHS (heads,
            sra_threshold, d_state, ...).
    """

    def build_mixer(self, embed_dims: int, **mixer_kwargs) -> nn.Module:
        return MHSGatedMixer2d(embed_dims, **mixer_kwargs)


@register_model()
class MHSVMamba(VMambaFrame):
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
        self._build_frame(settings, in_channels, drop_path_rate, functools.partial(
            MHSVSSBlock, mlp_ratio=settings['mlp_ratio'], with_cp=with_cp,
            heads=settings['heads'], sra_threshold=sra_threshold, d_state=settings['d_state'],
            dt_rank=settings['dt_rank'], conv_kernel=settings['conv_kernel'],
            kernel_backend=kernel_backend))

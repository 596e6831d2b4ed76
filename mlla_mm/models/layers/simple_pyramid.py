"""Multi-scale adapter for plain (single-stride) backbones: ViTDet's simple pyramid.

Vim's segmentation backbone (``fpn1..fpn4``) and ViTDet turn token maps of one stride
into maps at strides 4, 8, 16, 32 with 2x2/2 transposed convs (up), identity and max
pooling (down). Here the branch is chosen from the *effective* stride of the input map
(the patch-embedding stride), not the patch size, so a patch-16/stride-8 model gets
the right strides too.
"""
from typing import List, Sequence

import torch
from mmengine.model import BaseModule
from torch import nn


def pyramid_branch(embed_dims: int, in_stride: int, out_stride: int) -> nn.Module:
    """One branch mapping a stride-``in_stride`` map to stride ``out_stride``.

    Up by 2: ``ConvT``; up by 4: ``ConvT, BN, GELU, ConvT`` (Vim/ViTDet); same: Identity;
    down by 2^k: ``MaxPool(2^k)`` with ``ceil_mode=True`` so an odd map of n cells
    gives ceil(n / 2^k) cells (the same as upstream for even sizes).
    Up-sampling branches are ``nn.Sequential`` so their keys read ``fpnX.0.weight`` etc.
    """
    ratio = in_stride / out_stride
    if ratio == 4:
        return nn.Sequential(
            nn.ConvTranspose2d(embed_dims, embed_dims, kernel_size=2, stride=2),
            nn.BatchNorm2d(embed_dims),
            nn.GELU(),
            nn.ConvTranspose2d(embed_dims, embed_dims, kernel_size=2, stride=2))
    if ratio == 2:
        return nn.Sequential(nn.ConvTranspose2d(embed_dims, embed_dims, kernel_size=2, stride=2))
    if ratio == 1:
        return nn.Identity()
    down = out_stride // in_stride
    if out_stride % in_stride == 0 and down & (down - 1) == 0:
        return nn.MaxPool2d(kernel_size=down, stride=down, ceil_mode=True)
    raise ValueError(
        f'simple pyramid: cannot map stride {in_stride} to stride {out_stride}; up-sampling '
        'by 2 or 4 and down-sampling by powers of two are supported')


def pyramid_branches(embed_dims: int, in_stride: int,
                     out_strides: Sequence[int] = (4, 8, 16, 32)) -> List[nn.Module]:
    """The branches of :class:`SimplePyramid`, one per output stride."""
    if in_stride <= 0 or in_stride & (in_stride - 1):
        raise ValueError(f'simple pyramid: in_stride must be a power of two, got {in_stride}')
    return [pyramid_branch(embed_dims, in_stride, s) for s in out_strides]


class SimplePyramid(BaseModule):
    """Turn the maps of a plain backbone (all at one stride) into a multi-scale pyramid.

    Branch i (module ``fpn{i+1}``, the official Vim segmentation key names) maps
    input i to stride ``out_strides[i]``. Given a single map, every branch reads it
    (ViTDet); given as many maps as branches, branch i reads map i (Vim seg).

    Args:
        embed_dims: channels of the input maps (kept by every branch).
        in_stride: stride of the input maps w.r.t. the image (the patch stride).
        out_strides: output strides, default (4, 8, 16, 32).
        init_cfg: mmengine init config.
    """

    def __init__(self, embed_dims: int, in_stride: int,
                 out_strides: Sequence[int] = (4, 8, 16, 32), init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.out_strides = tuple(out_strides)
        self.num_branches = len(self.out_strides)
        for i, branch in enumerate(pyramid_branches(embed_dims, in_stride, out_strides)):
            self.add_module(f'fpn{i + 1}', branch)

    @staticmethod
    def apply_branches(branches: Sequence[nn.Module], features: Sequence[torch.Tensor]):
        if len(features) == 1:
            features = list(features) * len(branches)
        if len(features) != len(branches):
            raise ValueError(f'simple pyramid: got {len(features)} maps for {len(branches)} '
                             'branches; pass one map or one per branch (check out_indices)')
        return tuple(branch(f) for branch, f in zip(branches, features))

    def forward(self, features: Sequence[torch.Tensor]):
        branches = [getattr(self, f'fpn{i + 1}') for i in range(self.num_branches)]
        return self.apply_branches(branches, features)

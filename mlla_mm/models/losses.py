"""Losses of the binary segmentors (torch only; registered into every MODELS registry).

MHS-VM / VM-UNet train with ``BceDiceLoss(wb=1, wd=1)``: binary cross-entropy on the
sigmoid probabilities plus a Dice loss. In an mmseg decode head that is
``loss_decode=[dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
dict(type='BinaryDiceLoss', loss_weight=1.0)]`` with ``out_channels=1`` (mmseg's sigmoid
cross-entropy is the same mean over all pixels); the Dice half is :class:`BinaryDiceLoss`,
because mmseg's ``DiceLoss`` one-hot encodes a single-channel prediction against the
background class.
"""
from typing import Optional

import torch
from torch import nn

from ..registry import register_model


@register_model()
class BinaryDiceLoss(nn.Module):
    """Soft Dice loss of a single-channel (sigmoid) prediction, per image, batch-averaged.

    ``1 - mean_i (2 sum(p t) + smooth) / (sum(p) + sum(t) + smooth)`` with p = sigmoid(logit)
    and t in {0, 1} over the pixels of image i (upstream VM-UNet's ``DiceLoss``: smooth 1).
    Pixels labelled ``ignore_index`` (e.g. batch padding) are left out of the sums.

    Args:
        smooth (float): added to numerator and denominator. Default: 1.0 (upstream).
        loss_weight (float): multiplies the loss. Default: 1.0.
        loss_name (str): the name in the loss dict (must start with ``loss_`` to be
            back-propagated). Default: 'loss_dice'.
    """

    def __init__(self, smooth: float = 1.0, loss_weight: float = 1.0,
                 loss_name: str = 'loss_dice'):
        super().__init__()
        self.smooth = smooth
        self.loss_weight = loss_weight
        self._loss_name = loss_name

    @property
    def loss_name(self) -> str:
        return self._loss_name

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                weight: Optional[torch.Tensor] = None, ignore_index: int = 255,
                **kwargs) -> torch.Tensor:
        """``pred`` (N, 1, H, W) logits, ``target`` (N, H, W) labels in {0, 1, ignore_index};
        ``weight`` (N, H, W) optional per-pixel weights."""
        if pred.dim() != 4 or pred.shape[1] != 1:
            raise ValueError(f'BinaryDiceLoss takes single-channel logits (N, 1, H, W), got '
                             f'{tuple(pred.shape)}: set out_channels=1 in the decode head')
        prob = pred[:, 0].sigmoid()
        valid = (target != ignore_index).to(prob.dtype)
        if weight is not None:
            valid = valid * weight
        fg = (target == 1).to(prob.dtype) * valid
        prob = prob * valid
        inter = (prob * fg).flatten(1).sum(1)
        dice = (2 * inter + self.smooth) / (prob.flatten(1).sum(1) + fg.flatten(1).sum(1)
                                            + self.smooth)
        return self.loss_weight * (1 - dice.mean())

    def extra_repr(self) -> str:
        return f'smooth={self.smooth}, loss_weight={self.loss_weight}'

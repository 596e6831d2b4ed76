"""The classifier of VM-UNet: a 1x1 conv on the backbone's full-resolution map."""
from typing import List

import torch
from mmseg.models.decode_heads.decode_head import BaseDecodeHead

from ...registry import register_model


@register_model()
class VMUNetHead(BaseDecodeHead):
    """1x1 classifier ``conv_seg`` on the last backbone output (upstream's ``final_conv``).

    VM-UNet's decoder and its x4 expansion are the backbone's
    (:class:`~mlla_mm.models.backbones.VMUNet`, ``out_indices=(4,)``), so the head is only the
    classifier. For binary segmentation (``num_classes=2, out_channels=1``) mmseg thresholds
    the sigmoid at ``threshold`` and the logged ``acc_seg`` is the thresholded pixel accuracy
    (mmseg's own one takes the argmax of a single channel, always class 0).

    Args:
        in_channels (int): channels of the map (C0 / 4 = 24 for VM-UNet).
        channels (int, optional): must equal ``in_channels`` (no conv before the classifier);
            defaults to it.
        dropout_ratio (float): dropout before the classifier. Default: 0 (upstream has none).
        init_cfg (dict, optional): None keeps PyTorch's conv init (upstream's).
        **kwargs: the arguments of mmseg's ``BaseDecodeHead`` (num_classes, out_channels,
            threshold, loss_decode, ...).
    """

    def __init__(self, in_channels: int, channels=None, dropout_ratio: float = 0.0,
                 init_cfg=None, **kwargs):
        channels = in_channels if channels is None else channels
        if channels != in_channels:
            raise ValueError(f'VMUNetHead: channels ({channels}) must equal in_channels '
                             f'({in_channels}): the classifier reads the map directly')
        super().__init__(in_channels, channels, dropout_ratio=dropout_ratio,
                         init_cfg=init_cfg, **kwargs)

    def forward(self, inputs: List[torch.Tensor]) -> torch.Tensor:
        return self.cls_seg(self._transform_inputs(inputs))

    def loss_by_feat(self, seg_logits: torch.Tensor, batch_data_samples) -> dict:
        losses = super().loss_by_feat(seg_logits, batch_data_samples)
        if self.out_channels == 1:
            label = self._stack_batch_gt(batch_data_samples)[:, 0]
            logits = torch.nn.functional.interpolate(
                seg_logits, size=label.shape[1:], mode='bilinear',
                align_corners=self.align_corners)[:, 0]
            pred = (logits.sigmoid() > self.threshold).long()
            valid = label != self.ignore_index
            correct = ((pred == label) & valid).sum()
            losses['acc_seg'] = correct.float() * 100 / valid.sum().clamp(min=1)
        return losses

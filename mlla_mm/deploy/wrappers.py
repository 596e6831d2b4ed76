"""Tensor-in, tensor-out views of whole OpenMMLab models, for export.

An mmseg segmentor or mmdet detector in test mode takes data samples and returns data samples
(``predict``), which no exporter can trace. These wrappers keep the tensor part of the model --
images in, logits or feature maps out -- and share the wrapped model's parameters (no copy), so
the state dict is the model's with a ``model.`` prefix. What they leave out is post-processing
that belongs to the runtime: the argmax of the segmentation, and for detectors the RoI heads and
NMS (mmdeploy's business).

The input is the batch after the model's data preprocessor (normalised, padded), unless
``normalize=True``, which folds the preprocessor's mean/std into the graph.
"""
from typing import Tuple

import torch
from torch import Tensor, nn

__all__ = ['SegmentorLogits', 'DetectorFeatures', 'export_wrapper']


class _Normalize(nn.Module):
    """``(x - mean) / std`` of a data preprocessor (identity when it has none)."""

    def __init__(self, model: nn.Module, enabled: bool):
        super().__init__()
        pre = getattr(model, 'data_preprocessor', None)
        mean, std = getattr(pre, 'mean', None), getattr(pre, 'std', None)
        self.enabled = bool(enabled and mean is not None and std is not None)
        if self.enabled:
            self.register_buffer('mean', mean.detach().clone().float(), persistent=False)
            self.register_buffer('std', std.detach().clone().float(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std if self.enabled else x


class SegmentorLogits(nn.Module):
    """Segmentation logits of an mmseg ``EncoderDecoder`` (whole-image test mode).

    ``forward(images) -> logits``: ``(N, C, H, W) -> (N, num_classes, H, W)``, the decode
    head's logits resized (bilinear) to the input size, as ``encode_decode`` gives them in
    whole-image inference; with ``resize=False`` the head's own logits (stride 4 for UperNet),
    as ``model._forward`` gives them. The auxiliary head is not run (it only serves training).

    Args:
        segmentor (nn.Module): an mmseg ``EncoderDecoder`` (anything with ``extract_feat``
            and ``decode_head``).
        resize (bool): resize the logits to the input's H x W. Default: True.
        normalize (bool): apply the data preprocessor's mean/std to the input inside the
            wrapper (input then in pixel values). Default: False.
    """

    def __init__(self, segmentor: nn.Module, resize: bool = True, normalize: bool = False):
        super().__init__()
        for attr in ('extract_feat', 'decode_head'):
            if not hasattr(segmentor, attr):
                raise TypeError(f'SegmentorLogits wraps an mmseg EncoderDecoder; '
                                f'{type(segmentor).__name__} has no {attr!r}')
        self.model = segmentor
        self.resize = resize
        self.normalize = _Normalize(segmentor, normalize)

    def forward(self, images: Tensor) -> Tensor:
        images = self.normalize(images)
        if not self.resize:
            return self.model._forward(images)
        # a torch.Size img_shape is the branch of predict_by_feat that resizes to it (and the
        # sizes stay symbolic under torch.export)
        metas = [dict(img_shape=images.shape[2:])] * images.shape[0]
        return self.model.encode_decode(images, metas)


class DetectorFeatures(nn.Module):
    """Backbone + neck feature maps of an mmdet detector.

    ``forward(images) -> tuple of (N, C_i, H_i, W_i)``: ``detector.extract_feat(images)`` (for
    Mask R-CNN: the FPN levels). RoI heads and NMS are not exported (mmdeploy's business).

    Args:
        detector (nn.Module): an mmdet detector (anything with ``extract_feat``).
        normalize (bool): apply the data preprocessor's mean/std inside the wrapper.
            Default: False.
    """

    def __init__(self, detector: nn.Module, normalize: bool = False):
        super().__init__()
        if not hasattr(detector, 'extract_feat'):
            raise TypeError(f'DetectorFeatures wraps an mmdet detector; '
                            f'{type(detector).__name__} has no extract_feat')
        self.model = detector
        self.normalize = _Normalize(detector, normalize)

    def forward(self, images: Tensor) -> Tuple[Tensor, ...]:
        return tuple(self.model.extract_feat(self.normalize(images)))


def export_wrapper(model: nn.Module, backbone_only: bool = False, **kwargs) -> nn.Module:
    """The module to export for ``model``: a segmentor's :class:`SegmentorLogits`, a
    detector's :class:`DetectorFeatures`, or (``backbone_only=True``, or a bare backbone) the
    backbone itself. ``kwargs`` go to the wrapper."""
    if backbone_only:
        return getattr(model, 'backbone', model)
    if hasattr(model, 'decode_head') and hasattr(model, 'extract_feat'):
        return SegmentorLogits(model, **kwargs)
    if hasattr(model, 'extract_feat'):
        return DetectorFeatures(model, **kwargs)
    if hasattr(model, 'backbone'):
        raise TypeError(f'export_wrapper: no wrapper for {type(model).__name__} (not an mmseg '
                        'EncoderDecoder nor an mmdet detector); pass backbone_only=True')
    return model

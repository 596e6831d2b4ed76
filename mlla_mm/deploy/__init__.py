"""Deployment helpers: tensor-in, tensor-out wrappers of whole OpenMMLab models for
``torch.export``, ``torch.compile`` and ONNX (see docs/deploy.md)."""
from .wrappers import DetectorFeatures, SegmentorLogits, export_wrapper

__all__ = ['SegmentorLogits', 'DetectorFeatures', 'export_wrapper']

"""Deployment: tensor-in, tensor-out wrappers of whole OpenMMLab models for ``torch.export``,
``torch.compile`` and ONNX (:mod:`.wrappers`), and ONNX export checked in onnxruntime/OpenVINO
(:mod:`.onnx`; imports ``onnx``/``onnxruntime`` -- ``pip install mlla-mm[deploy]`` -- only when
exporting). See docs/deploy.md."""
from .wrappers import DetectorFeatures, SegmentorLogits, export_wrapper

__all__ = ['SegmentorLogits', 'DetectorFeatures', 'export_wrapper']

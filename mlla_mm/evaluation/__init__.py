"""Evaluation metrics; each registers itself into every METRICS registry on import."""
from .binary_seg_metric import BinarySegMetric

__all__ = ['BinarySegMetric']

"""Optimizer constructors and hooks; each registers itself on import."""
from .layer_decay import LayerDecayOptimWrapperConstructor, describe_groups

__all__ = ['LayerDecayOptimWrapperConstructor', 'describe_groups']

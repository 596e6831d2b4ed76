"""Optimizer constructors and hooks; each registers itself on import."""
from .autocast_optim_wrapper import AutocastOptimWrapper
from .layer_decay import LayerDecayOptimWrapperConstructor, describe_groups

__all__ = ['AutocastOptimWrapper', 'LayerDecayOptimWrapperConstructor', 'describe_groups']

"""Optimizer constructors and hooks; each registers itself on import."""
from .autocast_optim_wrapper import AutocastOptimWrapper
from .bad_samples import SkipBadSamplesHook
from .exact_resume import ExactResumeHook
from .layer_decay import LayerDecayOptimWrapperConstructor, describe_groups
from .non_finite import NonFiniteLossError, NonFiniteLossHook
from .preemption import PreemptionHook, TrainingPreempted

__all__ = ['AutocastOptimWrapper', 'LayerDecayOptimWrapperConstructor', 'describe_groups',
           'ExactResumeHook', 'PreemptionHook', 'TrainingPreempted', 'SkipBadSamplesHook',
           'NonFiniteLossHook', 'NonFiniteLossError']

"""NonFiniteLossHook: the first NaN/Inf loss or gradient norm stops training cleanly.

Without it, one NaN loss turns every weight into NaN at the optimizer step; training
then runs on for hours, logging ``nan`` and writing checkpoints nothing can resume from.

With it, the optimizer step of that iteration is not taken (the weights stay those of
the previous iteration), and after the iteration the log names the iteration and each
non-finite loss term (and the gradient norm); then, by default, training stops with
:class:`NonFiniteLossError` before any checkpoint hook runs, so no checkpoint is written
from that state and ``--resume`` restarts from the last good one. With
``action='skip'`` the step is skipped with a warning and training goes on, up to
``max_consecutive_skips`` non-finite steps in a row.

What is checked: the loss handed to ``optim_wrapper.update_params`` (the sum of the
terms) and, for a plain ``OptimWrapper``, the total gradient norm before clipping. An
``AmpOptimWrapper`` has a loss scaler that skips steps with overflowing gradients by
design, so there only the loss is checked. In distributed runs the ranks agree (one
all-reduce per step). Buffers updated by the forward pass (BatchNorm statistics) are not
rolled back; with ``action='stop'`` nothing from that state is saved anyway.
"""
import math
from typing import Optional

import torch
from mmengine.dist import get_world_size
from mmengine.hooks import Hook

from ..registry import register_hook

ACTIONS = ('stop', 'skip')


class NonFiniteLossError(RuntimeError):
    """Training stopped at the first non-finite loss or gradient norm."""


@register_hook()
class NonFiniteLossHook(Hook):
    """Stop (or skip the step) on a non-finite loss or gradient norm (see module docstring).

    Args:
        action (str): ``'stop'`` (default) or ``'skip'``.
        max_consecutive_skips (int): with ``'skip'``, stop after this many non-finite
            steps in a row (the run has diverged). Default 10.
    """
    priority = 'ABOVE_NORMAL'  # before the logger and before any checkpoint is written

    def __init__(self, action: str = 'stop', max_consecutive_skips: int = 10) -> None:
        if action not in ACTIONS:
            raise ValueError(f'NonFiniteLossHook: action must be one of {ACTIONS}, '
                             f'got {action!r}')
        self.action = action
        self.max_consecutive_skips = max_consecutive_skips
        self._loss_finite = True
        self._event: Optional[dict] = None  # set when a step was refused
        self._consecutive = 0

    def before_train(self, runner) -> None:
        wrapper = runner.optim_wrapper
        wrappers = list(wrapper.values()) if hasattr(wrapper, 'values') else [wrapper]
        for ow in wrappers:
            self._guard(ow)

    def _guard(self, ow) -> None:
        if getattr(ow, '_mlla_mm_non_finite_guard', False):
            return
        backward, step = ow.backward, ow.step
        check_grads = getattr(ow, 'loss_scaler', None) is None

        def guarded_backward(loss, **kwargs):
            self._loss_finite &= bool(torch.isfinite(loss.detach()).all())
            return backward(loss, **kwargs)

        def guarded_step(**kwargs):
            grad_norm = _grad_norm(ow) if check_grads else None
            bad = not self._loss_finite or (grad_norm is not None and
                                            not math.isfinite(grad_norm))
            loss_finite, self._loss_finite = self._loss_finite, True
            if _any_rank(bad):
                self._event = dict(loss_finite=loss_finite, grad_norm=grad_norm)
                return None  # refuse the step; update_params then zeroes the gradients
            return step(**kwargs)

        ow.backward, ow.step = guarded_backward, guarded_step
        ow._mlla_mm_non_finite_guard = True

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self._event is None:
            self._consecutive = 0
            return
        event, self._event = self._event, None
        self._consecutive += 1
        terms = {k: _as_float(v) for k, v in (outputs or {}).items()}
        bad_terms = {k: v for k, v in terms.items() if v is not None and not math.isfinite(v)}
        described = (', '.join(f'{k}={v}' for k, v in bad_terms.items())
                     or 'every loss term finite on this rank')
        if event['grad_norm'] is not None:
            described += f'; grad_norm={event["grad_norm"]}'
        where = (f'iteration {runner.iter + 1} (epoch {runner.epoch + 1}, '
                 f'batch {batch_idx + 1})')
        if self.action == 'skip' and self._consecutive <= self.max_consecutive_skips:
            runner.logger.warning(
                f'non-finite loss at {where}: {described}. The optimizer step was skipped '
                f'({self._consecutive} in a row, stopping after '
                f'{self.max_consecutive_skips}).')
            return
        last = runner.message_hub.get_info('last_ckpt')
        message = (
            f'non-finite loss at {where}: {described}. The optimizer step was not taken '
            'and training stops here; no checkpoint was written from this state'
            + (f' (the last checkpoint is {last})' if last else '') + '. Try a lower learning '
            'rate, gradient clipping (optim_wrapper.clip_grad), a longer warm-up, or check '
            'the data (tools/check_dataset.py); NonFiniteLossHook(action="skip") skips such '
            'steps instead.')
        runner.logger.error(message)  # into the log file too, not only the traceback
        raise NonFiniteLossError(message)


def _grad_norm(ow) -> float:
    grads = [p.grad for group in ow.optimizer.param_groups for p in group['params']
             if p.grad is not None]
    if not grads:
        return 0.0
    norms = torch._foreach_norm(grads)
    return float(torch.linalg.vector_norm(torch.stack([n.float() for n in norms])))


def _any_rank(flag: bool) -> bool:
    if get_world_size() == 1:
        return flag
    from mmengine.dist.utils import get_comm_device
    value = torch.tensor([int(flag)], device=get_comm_device())
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
    return bool(value.item())


def _as_float(value) -> Optional[float]:
    try:
        return float(value.detach() if isinstance(value, torch.Tensor) else value)
    except (TypeError, ValueError, RuntimeError):
        return None

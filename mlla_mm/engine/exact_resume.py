"""ExactResumeHook: ``--resume`` continues the interrupted run exactly.

Without it, mmengine restores weights, optimizer, schedulers and counters but no random
stream: a run resumed from epoch 1 redraws its augmentations, drop-path masks and RoI
samples, and loses bit-identity with the uninterrupted run at the first step (measured:
README "Reliability"). With it, the same seed on the same device in deterministic mode
gives the same losses, gradient norms and final weights whether or not the run was
interrupted, at any checkpoint, also in the middle of an epoch (preemption).

How -- every stream is re-seeded at fixed points from numbers every checkpoint holds
(run seed, iteration, epoch) plus the rank, instead of drifting from start-up:

* **Model-side streams** (Python, NumPy, torch CPU and CUDA: drop path, proposal and RoI
  sampling, ...) are seeded before every training iteration from (seed, rank, iteration).
  Whatever ran in between (validation, a dataloader starting its workers, a restart)
  cannot shift them.
* **Data-side streams**: every sample is loaded with its own seed, from (seed, rank,
  epoch, batch, slot) (:mod:`mlla_mm.engine.train_data`): nothing depends on which
  dataloader worker loads it, on the number of workers, on persistent workers or on what
  came before, and each epoch gets new augmentations (mmengine seeds its workers the same
  way every epoch, so without persistent workers each epoch replayed the same ones).
* **Sampler position**: the epoch's shuffle is a function of (seed, epoch); a run resumed
  mid-epoch replays the batch sampler's indices up to where it stopped, reading no image;
  an iteration-based loop is fast-forwarded the same way (placeholder batches for the
  batches mmengine skips after a resume).

The rank is part of every seed, so resuming with another number of processes is a new
(valid, reproducible) run, not a continuation. Add to a stock mmdet/mmseg config with
``custom_imports = dict(imports=['mlla_mm'])`` and
``custom_hooks = [dict(type='ExactResumeHook')]``.
"""
from typing import Optional

from mmengine.dist import get_rank
from mmengine.hooks import Hook

from ..registry import register_hook
from . import random_state
from .train_data import ResumableBatchSampler, guarded_train_dataloader, is_iteration_based


@register_hook()
class ExactResumeHook(Hook):
    """Seed every random stream from (seed, rank, position) and restore the data position
    on resume (see module docstring).

    No arguments: the run seed is mmengine's (``randomness.seed``; when it is None mmengine
    draws one, stores it in every checkpoint and takes it back on resume).
    """
    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._batch_sampler: Optional[ResumableBatchSampler] = None
        self._by_epoch = True
        self._seed = 0
        self._rank = 0

    def configure_train_data(self, runner, settings) -> None:
        settings.seed = runner.seed
        settings.fast_forward = True

    def before_train(self, runner) -> None:
        self._by_epoch = not is_iteration_based(runner.train_loop)
        self._seed, self._rank = int(runner.seed), get_rank()
        loader = guarded_train_dataloader(runner)
        if loader is not None:
            self._batch_sampler = loader.batch_sampler
        runner.logger.info(f'ExactResumeHook: random streams seeded per iteration and per '
                           f'sample from seed {self._seed}'
                           + (f'; resuming at iteration {runner.iter}' if runner.iter else ''))

    def before_train_epoch(self, runner) -> None:
        if self._by_epoch and self._batch_sampler is not None:
            self._batch_sampler.epoch = runner.epoch

    def after_train_epoch(self, runner) -> None:
        if self._batch_sampler is not None:
            self._batch_sampler.len_offset = 0  # a resumed, shortened epoch is over

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        random_state.seed_everything(random_state.sample_seed(
            random_state.MODEL_STREAM, self._seed, self._rank, runner.iter))

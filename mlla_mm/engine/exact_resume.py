"""ExactResumeHook: ``--resume`` continues the interrupted run exactly.

Without it, mmengine restores weights, optimizer, schedulers and counters but no random
state: a run resumed from epoch 1 redraws its augmentations, drop-path masks and RoI
samples, and loses bit-identity with the uninterrupted run at the first step (measured:
README "Reliability"). With it, the same seed on the same device in deterministic mode
gives the same losses, gradient norms and final weights whether or not the run was
interrupted, at any checkpoint, also in the middle of an epoch (preemption).

How:

* **Model-side streams** (Python, NumPy, torch CPU/CUDA: drop path, RoI/proposal
  sampling, ...) are captured after every training iteration, stored in every checkpoint
  (``checkpoint['random_state']``, one entry per rank), and put back before the next
  iteration -- in the uninterrupted run too, so whatever runs in between (validation, a
  dataloader starting its workers) cannot shift the stream.
* **Data-side streams**: every sample is loaded with its own seed, mixed from the run
  seed, rank, epoch, batch and slot (:mod:`mlla_mm.engine.train_data`): nothing depends
  on which dataloader worker loads it, on the number of workers, on persistent workers or
  on what came before; each epoch gets new augmentations.
* **Sampler position**: the epoch's shuffle is a function of (seed, epoch); a run resumed
  mid-epoch replays the batch sampler's indices up to where it stopped, reading no image.
  Iteration-based loops are fast-forwarded the same way (placeholder batches for the
  batches mmengine skips after a resume).

Add to a stock mmdet/mmseg config with ``custom_hooks = [dict(type='ExactResumeHook')]``
(and ``custom_imports = dict(imports=['mlla_mm'])``).
"""
from typing import Optional

from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import Hook

from ..registry import register_hook
from . import random_state
from .train_data import ResumableBatchSampler, guarded_train_dataloader, is_iteration_based

CHECKPOINT_KEY = 'random_state'


@register_hook()
class ExactResumeHook(Hook):
    """Save and restore every random state and the data position (see module docstring).

    No arguments: the run seed is mmengine's (``randomness.seed``, stored in checkpoints
    and taken back on resume).
    """
    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._state: Optional[dict] = None  # streams as of the end of the last iteration
        self._batch_sampler: Optional[ResumableBatchSampler] = None
        self._by_epoch = True

    def configure_train_data(self, runner, settings) -> None:
        settings.seed = runner.seed
        settings.fast_forward = True

    def before_train(self, runner) -> None:
        self._by_epoch = not is_iteration_based(runner.train_loop)
        loader = guarded_train_dataloader(runner)
        if loader is not None:
            self._batch_sampler = loader.batch_sampler
        if self._state is None:  # a fresh run (a resumed one has the checkpoint's)
            self._state = random_state.capture()

    def before_train_epoch(self, runner) -> None:
        if self._by_epoch and self._batch_sampler is not None:
            self._batch_sampler.epoch = runner.epoch

    def after_train_epoch(self, runner) -> None:
        if self._batch_sampler is not None:
            self._batch_sampler.len_offset = 0  # a resumed, shortened epoch is over

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        random_state.restore(self._state)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._state = random_state.capture()

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        state = self._state if self._state is not None else random_state.capture()
        states = all_gather_object(state) if get_world_size() > 1 else [state]
        checkpoint[CHECKPOINT_KEY] = dict(world_size=len(states), ranks=states)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not getattr(runner, '_resume', False):
            return  # load_from (fine-tuning, testing): a new run, not a continuation
        saved = checkpoint.get(CHECKPOINT_KEY)
        if saved is None:
            runner.logger.warning(
                'the resumed checkpoint holds no random state (it was written without '
                'ExactResumeHook): the data position is restored, but augmentation and '
                'model-side sampling will not repeat the interrupted run')
            return
        if saved['world_size'] != get_world_size():
            runner.logger.warning(
                f'the checkpoint was written by {saved["world_size"]} processes, this run '
                f'has {get_world_size()}: random states are not restored, so the run will '
                'not repeat the interrupted one exactly')
            return
        self._state = _to_cpu(saved['ranks'][get_rank()])
        runner.logger.info('ExactResumeHook: random state restored from the checkpoint')


def _to_cpu(value):
    """Checkpoints are loaded onto the training device; generator states live on the CPU."""
    if hasattr(value, 'cpu'):
        return value.cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    return value

"""The training dataloader that our reliability hooks share.

mmengine builds the training dataloader together with the train loop, before any hook
runs, and its samplers and workers then draw from streams nobody saves. In
``before_train`` the first of our hooks that needs it replaces the loop's dataloader by
one built from the same config around the same dataset objects, in which

* every sample carries its own seed, mixed from (run seed, rank, epoch, batch, slot):
  its augmentation no longer depends on which worker loads it, on how many workers there
  are, on whether they persist across epochs, or on anything that ran before -- so a
  resumed run draws exactly what the uninterrupted run drew (:class:`ExactResumeHook`);
* a resumed run fast-forwards past the batches it already trained on, by replaying only
  the batch sampler's indices (no image is read), also in the middle of an epoch;
* a sample that fails to load is replaced by another one, with a warning naming its
  files, up to a limit (:class:`SkipBadSamplesHook`);
* dataloader workers ignore the preemption signals, which the main process handles
  (:class:`PreemptionHook`).

Each hook says what it needs through ``configure_train_data(runner, settings)``; the
loader is rebuilt once, with everything the registered hooks asked for.
"""
import copy
import inspect
import random
from dataclasses import dataclass, field
from typing import Callable, List, NamedTuple, Optional

import torch
from mmengine.dist import get_rank
from mmengine.logging import print_log
from torch.utils.data import DataLoader, Dataset

from . import random_state


class Draw(NamedTuple):
    """What the batch sampler hands the dataset: an index, the seed of this draw, and
    whether to return a placeholder instead (a batch mmengine is about to skip)."""
    index: int
    seed: Optional[int] = None
    placeholder: bool = False


@dataclass
class TrainDataSettings:
    """What the registered hooks ask of the training dataloader."""
    seed: Optional[int] = None            # per-sample seeds from this run seed (None: off)
    fast_forward: bool = False            # skip the batches a resumed run already trained on
    max_bad_samples: Optional[int] = None  # skip unloadable samples, up to this many (None: off)
    seg_num_classes: Optional[int] = None  # check semantic labels < this (or ignore_index)
    seg_ignore_index: int = 255
    worker_init_fns: List[Callable[[int], None]] = field(default_factory=list)


class BadSampleError(RuntimeError):
    """A training sample whose content would crash or corrupt training."""


class TooManyBadSamplesError(RuntimeError):
    """More training samples failed to load than the configured limit."""


class GuardedDataset(Dataset):
    """The training dataset, loaded per :class:`Draw`: seeded, with bad samples replaced.

    Attribute reads and writes other than its own go to the wrapped dataset, so hooks
    that use ``runner.train_dataloader.dataset.metainfo`` or set ``.pipeline`` keep working.
    """
    _OWN = ('dataset', 'max_bad_samples', 'seg_num_classes', 'seg_ignore_index', '_bad')

    def __init__(self, dataset, max_bad_samples: Optional[int] = None,
                 seg_num_classes: Optional[int] = None, seg_ignore_index: int = 255):
        self.dataset = dataset
        self.max_bad_samples = max_bad_samples
        self.seg_num_classes = seg_num_classes
        self.seg_ignore_index = seg_ignore_index
        # one flag per sample, in shared memory: every worker sees which samples failed,
        # so each is reported once and the limit counts distinct samples over the run
        self._bad = (torch.zeros(len(dataset), dtype=torch.uint8).share_memory_()
                     if max_bad_samples is not None else None)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name):
        if name in GuardedDataset._OWN:  # not set yet (e.g. while unpickling)
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __setattr__(self, name, value):
        if name in GuardedDataset._OWN:
            object.__setattr__(self, name, value)
        else:
            setattr(self.dataset, name, value)

    def __getitem__(self, draw):
        if not isinstance(draw, Draw):
            return self._load(draw)
        if draw.placeholder:
            return {}
        with random_state.seeded(draw.seed):
            return self._load(draw.index)

    def describe(self, index: int) -> str:
        """The files behind sample ``index``, for messages."""
        try:
            info = self.dataset.get_data_info(index)
        except Exception:
            return f'sample {index}'
        files = [str(info[k]) for k in ('img_path', 'seg_map_path') if info.get(k)]
        return f'sample {index} ({", ".join(files)})' if files else f'sample {index}'

    def _load(self, index: int):
        if self.max_bad_samples is None:
            return self.dataset[index]
        attempts = 0
        while True:
            try:
                data = self.dataset[index]
                self._check_labels(data)
                return data
            except Exception as error:  # noqa: BLE001 -- any failure of this sample
                attempts += 1
                self._report(index, error, attempts)
                # a replacement drawn from the (seeded) stream: reproducible
                index = random.randrange(len(self.dataset))

    def _report(self, index: int, error: Exception, attempts: int) -> None:
        first_time = not bool(self._bad[index])
        self._bad[index] = 1
        count = int(self._bad.sum())
        what = f'{type(error).__name__}: {error}'.strip()
        if count > self.max_bad_samples or attempts > self.max_bad_samples:
            how_many = (f'{count} different training samples could not be used'
                        if count > self.max_bad_samples else
                        f'{attempts} training samples in a row could not be used')
            raise TooManyBadSamplesError(
                f'{how_many}, more than max_bad_samples={self.max_bad_samples} '
                f'(SkipBadSamplesHook); the last was {self.describe(index)}: {what}. List '
                'every problem with `python tools/check_dataset.py CONFIG`.') from error
        if first_time:
            print_log(f'skipping training {self.describe(index)}, which cannot be used: {what} '
                      f'[{count} of at most {self.max_bad_samples} bad samples so far; '
                      'a random other sample is used instead]', logger='current', level=30)

    def _check_labels(self, data) -> None:
        if self.seg_num_classes is None or not isinstance(data, dict):
            return
        seg = getattr(data.get('data_samples'), 'gt_sem_seg', None)
        if seg is None:
            return
        labels = seg.data
        bad = (labels < 0) | ((labels >= self.seg_num_classes) & (labels != self.seg_ignore_index))
        if bool(bad.any()):
            values = sorted(int(v) for v in torch.unique(labels[bad])[:8])
            raise BadSampleError(
                f'label values {values} are outside the {self.seg_num_classes} classes '
                f'(0..{self.seg_num_classes - 1}) and ignore_index {self.seg_ignore_index}')


class ResumableBatchSampler:
    """Wraps the config's batch sampler: seeds every draw, fast-forwards after a resume.

    The seed of a draw is ``sample_seed(DATA_STREAM, seed, rank, epoch, batch, slot)``.
    ``epoch`` is set by :class:`ExactResumeHook` before each epoch of an epoch-based loop;
    for an iteration-based loop it counts the passes over the sampler.

    ``drop`` batches at the start are not yielded at all (an epoch-based loop resumed in
    the middle of an epoch); ``placeholders`` batches are yielded as placeholders, which
    load nothing (an iteration-based loop, which itself skips that many batches after a
    resume). Either way only indices are drawn, so the sampler state moves on exactly.
    """

    def __init__(self, batch_sampler, seed: Optional[int] = None, rank: int = 0):
        self.batch_sampler = batch_sampler
        # DistSamplerSeedHook / mmengine's loops call `batch_sampler.sampler.set_epoch`
        self.sampler = getattr(batch_sampler, 'sampler', None)
        self.seed = seed
        self.rank = rank
        self.epoch = 0
        self.drop = 0
        self.placeholders = 0
        self.len_offset = 0  # batches dropped from the current epoch (its reported length)

    def __len__(self) -> int:
        return len(self.batch_sampler) - self.len_offset

    def __iter__(self):
        epoch = self.epoch
        for number, batch in enumerate(self.batch_sampler):
            if self.drop > 0:
                self.drop -= 1
                continue
            if self.placeholders > 0:
                self.placeholders -= 1
                yield [Draw(int(i), None, True) for i in batch]
                continue
            yield [Draw(int(i), None if self.seed is None else
                        random_state.sample_seed(random_state.DATA_STREAM, self.seed,
                                                 self.rank, epoch, number, slot))
                   for slot, i in enumerate(batch)]
        self.epoch = epoch + 1


class ChainedWorkerInit:
    """``worker_init_fn`` calling several functions in order (picklable for spawn)."""

    def __init__(self, fns: List[Callable[[int], None]]):
        self.fns = [fn for fn in fns if fn is not None]

    def __call__(self, worker_id: int) -> None:
        for fn in self.fns:
            fn(worker_id)


def is_iteration_based(loop) -> bool:
    return hasattr(loop, 'dataloader_iterator')


def guarded_train_dataloader(runner) -> Optional[DataLoader]:
    """The runner's training dataloader, rebuilt once as described in the module docstring.

    Call from ``before_train``, after a resume. Returns ``None`` (and changes nothing) when
    the loop has no map-style dataloader with a batch sampler.
    """
    loop = runner.train_loop
    loader = loop.dataloader
    if isinstance(getattr(loader, 'dataset', None), GuardedDataset):
        return loader
    if not isinstance(loader, DataLoader) or loader.batch_sampler is None:
        print_log('the training dataloader has no batch sampler: per-sample seeds, resume '
                  'fast-forward and bad-sample skipping are off', logger='current', level=30)
        return None
    settings = TrainDataSettings()
    for hook in runner.hooks:
        configure = getattr(hook, 'configure_train_data', None)
        if callable(configure):
            configure(runner, settings)

    fresh = _unused_copy(runner, loader)
    batch_sampler = ResumableBatchSampler(fresh.batch_sampler, settings.seed, get_rank())
    if settings.fast_forward and runner.iter > 0:
        if is_iteration_based(loop):
            batch_sampler.placeholders = runner.iter  # mmengine skips `iter` batches itself
        else:
            done = runner.iter - runner.epoch * len(fresh.batch_sampler)
            batch_sampler.drop = batch_sampler.len_offset = max(done, 0)
    dataset = GuardedDataset(fresh.dataset, settings.max_bad_samples, settings.seg_num_classes,
                             settings.seg_ignore_index)
    kwargs = dict(num_workers=fresh.num_workers, collate_fn=fresh.collate_fn,
                  pin_memory=fresh.pin_memory, timeout=fresh.timeout,
                  worker_init_fn=ChainedWorkerInit([fresh.worker_init_fn,
                                                    *settings.worker_init_fns]),
                  multiprocessing_context=fresh.multiprocessing_context,
                  generator=fresh.generator, persistent_workers=fresh.persistent_workers,
                  prefetch_factor=fresh.prefetch_factor if fresh.num_workers > 0 else None,
                  pin_memory_device=getattr(fresh, 'pin_memory_device', ''),
                  in_order=getattr(fresh, 'in_order', True))
    accepted = inspect.signature(DataLoader.__init__).parameters
    guarded = DataLoader(dataset, batch_sampler=batch_sampler,
                         **{k: v for k, v in kwargs.items() if k in accepted})
    loop.dataloader = guarded
    if is_iteration_based(loop):
        # the loop started iterating its own loader when it was built; start over on ours
        loop.dataloader_iterator = type(loop.dataloader_iterator)(guarded)
    return guarded


def _unused_copy(runner, loader: DataLoader) -> DataLoader:
    """The config's training dataloader built again around the already built dataset, so
    its sampler and batch sampler have never been iterated (an iteration-based loop
    prefetches from its loader as soon as it is built)."""
    cfg = runner.cfg.get('train_dataloader') if getattr(runner, 'cfg', None) else None
    if not isinstance(cfg, dict):
        return loader
    cfg = copy.deepcopy(dict(cfg))
    cfg['dataset'] = loader.dataset
    cfg.pop('num_batch_per_epoch', None)  # already applied to loader.dataset
    randomness = getattr(runner, '_randomness_cfg', None) or {}
    return runner.build_dataloader(cfg, seed=runner.seed,
                                   diff_rank_seed=randomness.get('diff_rank_seed', False))

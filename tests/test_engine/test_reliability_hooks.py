"""The reliability hooks on a toy mmengine run (in-process, seconds): exact resume at
epoch ends, mid-epoch (preemption) and mid-way through an iteration-based run, with 0 and
2 (persistent) workers; bad samples skipped; a NaN loss stopped before a checkpoint."""
import glob
import os
import os.path as osp
import random
import signal
import uuid

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

import mlla_mm  # noqa: F401  (registers the hooks)
from mlla_mm.engine import NonFiniteLossError, TrainingPreempted, random_state
from mlla_mm.engine.train_data import Draw, GuardedDataset, ResumableBatchSampler

N_SAMPLES = 12


class AugmentedDataset(torch.utils.data.Dataset):
    """Each item draws from all three global generators, as real pipelines do."""

    def __init__(self, broken=()):
        self.base = torch.linspace(-1, 1, N_SAMPLES * 4).reshape(N_SAMPLES, 4)
        self.broken = set(broken)

    def __len__(self):
        return N_SAMPLES

    def __getitem__(self, i):
        if i in self.broken:
            raise FileNotFoundError(f'img_{i}.jpg')
        noise = torch.randn(4) * 0.1 + float(np.random.rand()) + random.random()
        return dict(inputs=self.base[i] + noise, index=i)


class ToyModel(BaseModel):
    """Dropout draws from torch's stream on the model side; ``nan_at`` injects a NaN."""

    def __init__(self, nan_at=None):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.Dropout(0.5), nn.Linear(16, 1))
        self.nan_at = nan_at
        self.calls = 0

    def forward(self, inputs, data_samples=None, mode='tensor', index=None):
        out = self.net(torch.stack(inputs)).mean()
        self.calls += 1
        if mode != 'loss':
            return out
        reg = out * 0 + (float('nan') if self.calls == self.nan_at else 0.0)
        return dict(loss_main=out ** 2, loss_reg=reg)


class Recorder(Hook):
    def __init__(self):
        self.losses, self.indices = [], []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.losses.append((runner.iter + 1, float(outputs['loss'].detach())))
        self.indices.append(list(data_batch['index']))


class SendSignal(Hook):
    """Sends SIGUSR1 to this process during iteration ``at`` (as a scheduler would)."""
    priority = 'VERY_HIGH'

    def __init__(self, at):
        self.at = at

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 == self.at:
            os.kill(os.getpid(), signal.SIGUSR1)


def run(work_dir, max_epochs=2, workers=0, resume=False, hooks=(), by_epoch=True,
        max_iters=7, dataset=None, model=None, checkpoint_interval=1, reliability=True):
    recorder = Recorder()
    torch.manual_seed(0)  # the model is built here, before the runner seeds anything
    model = model or ToyModel()
    loop = (dict(type='EpochBasedTrainLoop', max_epochs=max_epochs) if by_epoch else
            dict(type='IterBasedTrainLoop', max_iters=max_iters))
    sampler = dict(type='DefaultSampler' if by_epoch else 'InfiniteSampler', shuffle=True)
    custom = [dict(type='ExactResumeHook'), dict(type='PreemptionHook')] if reliability else []
    runner = Runner(
        model=model, work_dir=str(work_dir), experiment_name=uuid.uuid4().hex,
        train_dataloader=dict(dataset=dataset or AugmentedDataset(), sampler=sampler,
                              batch_size=3, num_workers=workers,
                              persistent_workers=workers > 0),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
        train_cfg=loop, randomness=dict(seed=0), resume=resume,
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', by_epoch=by_epoch,
                                           interval=checkpoint_interval),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[*custom, *hooks, recorder], default_scope='mmengine')
    try:
        runner.train()
    finally:
        runner.logger.handlers[-1].close()
        iterator = getattr(runner.train_dataloader, '_iterator', None)  # persistent workers
        if iterator is not None:
            iterator._shutdown_workers()
    weights = {k: v.clone() for k, v in runner.model.state_dict().items()}
    return recorder, weights


def assert_same_run(straight, resumed_parts):
    """The resumed parts' iterations, together, are the straight run's, bit for bit."""
    (rec, weights), parts = straight, resumed_parts
    resumed = dict(loss for part, _ in parts for loss in part.losses)
    assert resumed, 'nothing ran after the resume'
    for it, loss in rec.losses:
        if it in resumed:
            assert resumed[it] == loss, (it, resumed[it], loss)
    final = parts[-1][1]
    assert weights.keys() == final.keys()
    assert all(torch.equal(weights[k], final[k]) for k in weights)


@pytest.fixture(scope='module')
def straight(tmp_path_factory):
    return run(tmp_path_factory.mktemp('straight'))


@pytest.mark.parametrize('workers', [0, 2])
def test_epoch_resume_is_exact(straight, tmp_path, workers):
    first = run(tmp_path, max_epochs=1, workers=workers)
    second = run(tmp_path, max_epochs=2, workers=workers, resume=True)
    assert [it for it, _ in second[0].losses] == [5, 6, 7, 8]
    assert first[0].losses == straight[0].losses[:4]  # workers change nothing either
    assert_same_run(straight, [first, second])


def test_each_epoch_draws_new_augmentations():
    """Per-sample seeds differ per epoch (mmengine's worker seeding replays them)."""
    ds = AugmentedDataset()
    with random_state.seeded(random_state.sample_seed(0, 0, 0, 0, 0)):
        epoch0 = ds[0]['inputs']
    with random_state.seeded(random_state.sample_seed(0, 0, 1, 0, 0)):
        epoch1 = ds[0]['inputs']
    assert not torch.equal(epoch0, epoch1)
    sampler = ResumableBatchSampler([[0, 1]], seed=0)
    first, second = list(sampler), list(sampler)  # two passes of an iteration-based loop
    assert [d.index for d in first[0]] == [d.index for d in second[0]]
    assert [d.seed for d in first[0]] != [d.seed for d in second[0]]


def test_without_the_hook_resume_differs(tmp_path):
    """The measurement of issue 11 in small: plain mmengine does not continue the run."""
    straight = run(tmp_path / 'a', reliability=False)
    run(tmp_path / 'b', max_epochs=1, reliability=False)
    second = run(tmp_path / 'b', max_epochs=2, resume=True, reliability=False)
    resumed = dict(second[0].losses)
    assert any(resumed[it] != loss for it, loss in straight[0].losses if it in resumed)


@pytest.mark.parametrize('workers', [0, 2])
def test_preempted_mid_epoch_resumes_exactly(straight, tmp_path, workers):
    with pytest.raises(TrainingPreempted) as exc:
        run(tmp_path, workers=workers, hooks=[SendSignal(at=6)])
    assert exc.value.code == 128 + signal.SIGUSR1
    assert osp.isfile(tmp_path / 'preempted_iter_6.pth')
    with open(tmp_path / 'last_checkpoint') as f:
        assert f.read().endswith('preempted_iter_6.pth')
    assert not glob.glob(str(tmp_path / '.tmp-*')), 'temporary files left behind'
    assert signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, None), 'handler not restored'
    second = run(tmp_path, workers=workers, resume=True)
    assert [it for it, _ in second[0].losses] == [7, 8], 'continues inside epoch 2'
    assert_same_run(straight, [second])


def test_iteration_based_resume_mid_way(tmp_path):
    straight = run(tmp_path / 'a', by_epoch=False, max_iters=7, checkpoint_interval=3)
    run(tmp_path / 'b', by_epoch=False, max_iters=3, checkpoint_interval=3)
    second = run(tmp_path / 'b', by_epoch=False, max_iters=7, checkpoint_interval=3,
                 resume=True)
    assert [it for it, _ in second[0].losses] == [4, 5, 6, 7]
    # 12 samples, batch 3: iteration 4 starts a new pass of the sampler, 5..7 continue it
    assert second[0].indices == straight[0].indices[3:]
    assert_same_run(straight, [second])


def test_bad_samples_are_skipped_with_a_warning(tmp_path, caplog):
    ds = AugmentedDataset(broken={2, 5})
    guarded = GuardedDataset(ds, max_bad_samples=2)
    items = [guarded[Draw(i, seed=i)] for i in range(N_SAMPLES)]
    assert all(item['index'] not in (2, 5) for item in items)
    assert [item['index'] for item in items] == [guarded[Draw(i, seed=i)]['index']
                                                 for i in range(N_SAMPLES)], 'reproducible'
    assert int(guarded._bad.sum()) == 2
    strict = GuardedDataset(AugmentedDataset(broken={0, 1, 2}), max_bad_samples=2)
    with pytest.raises(RuntimeError, match='3 different training samples could not be used'):
        [strict[Draw(i, seed=i)] for i in range(N_SAMPLES)]
    unguarded = GuardedDataset(AugmentedDataset(broken={1}))
    with pytest.raises(FileNotFoundError):
        unguarded[Draw(1, seed=0)]


def test_segmentation_labels_out_of_range_are_rejected():
    from mmengine.structures import PixelData

    class Seg(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            sample = type('S', (), {})()
            sample.gt_sem_seg = PixelData(data=torch.full((1, 4, 4), 199 if i == 0 else 3))
            return dict(data_samples=sample, index=i)

        def get_data_info(self, i):
            return dict(img_path=f'img_{i}.jpg', seg_map_path=f'seg_{i}.png')

    guarded = GuardedDataset(Seg(), max_bad_samples=5, seg_num_classes=8)
    assert guarded[Draw(0, seed=1)]['index'] == 1
    assert guarded.describe(0) == 'sample 0 (img_0.jpg, seg_0.png)'


def test_non_finite_loss_stops_before_a_checkpoint(tmp_path):
    # iteration 6 is the second of epoch 2; epoch 1's checkpoint exists, none after it
    with pytest.raises(NonFiniteLossError, match=r'iteration 6 .*loss_reg=nan') as exc:
        run(tmp_path, model=ToyModel(nan_at=6), hooks=[dict(type='NonFiniteLossHook')])
    assert 'no checkpoint was written' in str(exc.value)
    assert sorted(osp.basename(p) for p in glob.glob(str(tmp_path / '*.pth'))) == ['epoch_1.pth']


def test_non_finite_loss_skip_keeps_weights_finite(tmp_path):
    rec, weights = run(tmp_path, model=ToyModel(nan_at=3),
                       hooks=[dict(type='NonFiniteLossHook', action='skip')])
    assert len(rec.losses) == 8
    assert all(torch.isfinite(w).all() for w in weights.values())
    with pytest.raises(ValueError, match='action must be one of'):
        from mlla_mm.engine import NonFiniteLossHook
        NonFiniteLossHook(action='ignore')


def _draw():
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_seeded_block_is_reproducible_and_isolated():
    random_state.seed_everything(7)
    expected = _draw()
    random_state.seed_everything(7)
    with random_state.seeded(123):
        inside = _draw()
    with random_state.seeded(123):
        assert _draw() == inside
    assert _draw() == expected, 'seeded() must not disturb the caller'

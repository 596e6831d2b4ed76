"""UperNet (iteration-based) through tools/train.py and tools/test.py on generated data with
one bad training label map: validation, skipping the bad sample, exact --resume mid-way through
a sampler pass, evaluation. The runs are made once (module fixture) and read by each check."""
import os.path as osp

import pytest

from e2e_runs import SEG, SEG_OPTS, assert_identical, checkpoints, evaluate, train, workers

pytest.importorskip('mmseg')


@pytest.fixture(scope='module')
def seg_runs(bad_ade20k, tmp_path_factory):
    """UperNet, iteration-based, 5 iterations straight and 2 + --resume to 5 (mid sampler
    pass), on data where one training label map holds a value beyond the classes."""
    root, broken = bad_ade20k
    straight = tmp_path_factory.mktemp('seg_straight')
    resumed = tmp_path_factory.mktemp('seg_resumed')
    opts = [*SEG_OPTS, *workers(0)]
    outs = dict(straight=train(SEG, straight, root, [*opts, 'train_cfg.max_iters=5']),
                first=train(SEG, resumed, root, [*opts, 'train_cfg.max_iters=2']),
                first_checkpoints=checkpoints(resumed))
    outs['resumed'] = train(SEG, resumed, root, [*opts, 'train_cfg.max_iters=5'], resume=True)
    return root, broken, str(straight), str(resumed), outs


def test_seg_iteration_based_resume_mid_way(seg_runs):
    """Resumed at iteration 2 of 5; the bad sample is skipped with a warning naming it, and
    the replacement is drawn the same way in both runs."""
    root, broken, straight, resumed, outs = seg_runs
    assert f'{broken["label out of range"]}), which cannot be used' in outs['straight'], \
        outs['straight'][-4000:]
    assert 'outside the 8 classes' in outs['straight']
    assert 'mIoU' in outs['first'] and 'mIoU' in outs['resumed'], 'validated at each end'
    assert outs['first_checkpoints'] == ['iter_2.pth'] and 'iter_5.pth' in checkpoints(resumed)
    assert 'resumed epoch: 0, iter: 2' in outs['resumed']
    # iteration 3 ends the sampler's first pass, 4 and 5 start the second
    assert_identical(straight, resumed, 'iter_5.pth', first_resumed_iter=1)


def test_test_py_evaluates_a_segmentor(seg_runs, tmp_path):
    root, _, straight, _, _ = seg_runs
    metrics = evaluate(SEG, osp.join(straight, 'iter_5.pth'), root, tmp_path, SEG_OPTS)
    assert 0.0 <= metrics['mIoU'] <= 100.0

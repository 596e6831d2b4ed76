"""`tools/demo.py --task pose` end to end on a tiny generated COCO-keypoints set: the pose
demo config trains two iterations through `tools/train.py`, is evaluated before and after by
`tools/test.py` (mmpose's CocoMetric), and its predictions are drawn beside the ground truth;
then `tools/train.py --resume` continues that run for one more epoch."""
import glob
import json
import os.path as osp

import numpy as np
import pytest

from tool_runner import PY, run_tool

pytest.importorskip('mmpose')
mmcv = pytest.importorskip('mmcv')

CONFIG = 'configs/demo/td-hm_hrvmamba_demo.py'
# 4 person crops at batch 2: 2 iterations, then evaluation on every validation person
TINY = ['train_dataloader.batch_size=2', 'train_dataloader.dataset.indices=4',
        'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False', 'val_dataloader.persistent_workers=False',
        'val_dataloader.batch_size=8', 'default_hooks.logger.interval=1']


@pytest.fixture(scope='module')
def demo_run(demo_coco_pose, tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('pose_demo'))
    out = run_tool([PY, 'tools/demo.py', '--task', 'pose', '--data-root', demo_coco_pose,
                    '--work-dir', work_dir, '--num-pictures', '2', '--cfg-options',
                    'train_cfg.max_epochs=1', *TINY])
    with open(osp.join(work_dir, 'demo_results.json')) as f:
        return work_dir, out, json.load(f)['pose']


def test_pose_demo_evaluates_trains_and_draws(demo_run, demo_coco_pose):
    work_dir, out, results = demo_run
    assert results['config'] == CONFIG
    for stage in ('untrained', 'trained'):
        assert {'coco/AP', 'coco/AP .5', 'coco/AR'} <= set(results[stage]), stage
        assert 0.0 <= results[stage]['coco/AP'] <= 1.0
    assert '| coco/AP |' in out   # the printed table
    train_rows = [json.loads(line) for line in open(glob.glob(
        osp.join(work_dir, 'pose', '*', 'vis_data', 'scalars.json'))[0]) if 'loss' in line]
    assert len(train_rows) == 2 and all(np.isfinite(r['loss']) for r in train_rows)

    pictures = results['pictures']
    names = sorted(osp.basename(p) for p in pictures)
    assert names == ['predictions.jpg', 'training_curves.png', 'val_000000000001.png',
                     'val_000000000002.png'], names
    for path in pictures:
        assert osp.isfile(path) and path in out
    # ground truth | prediction under a title band; every person of the image is drawn on
    # the ground-truth half (keypoints and skeletons over the input image)
    source = mmcv.imread(osp.join(demo_coco_pose, 'val2017', '000000000001.jpg')
                         ).astype(np.float32)
    picture = mmcv.imread(next(p for p in pictures if p.endswith('val_000000000001.png'))
                          ).astype(np.float32)
    h, w = source.shape[:2]
    assert picture.shape[:2] == (h + 22, 2 * w)
    changed = np.abs(picture[22:, :w] - source).max(axis=2) > 60
    with open(osp.join(demo_coco_pose, 'annotations', 'person_keypoints_val2017.json')) as f:
        anns = [a for a in json.load(f)['annotations'] if a['image_id'] == 1]
    for ann in anns:   # drawing near every labelled keypoint of every person
        kpts = np.array(ann['keypoints']).reshape(17, 3)
        near = [changed[max(int(y) - 3, 0):int(y) + 4, max(int(x) - 3, 0):int(x) + 4].any()
                for x, y, v in kpts if v > 0]
        assert np.mean(near) > 0.8, ann['id']


def test_pose_training_resumes(demo_run, demo_coco_pose):
    """--resume picks up the demo's run (epoch 1) and trains epoch 2 only."""
    work_dir = osp.join(demo_run[0], 'pose')
    out = run_tool([PY, 'tools/train.py', CONFIG, '--work-dir', work_dir, '--resume',
                    '--data-root', demo_coco_pose, '--cfg-options', 'train_cfg.max_epochs=2',
                    'train_cfg.val_interval=2', *TINY])
    assert 'resumed epoch: 1' in out.lower() or 'resumed from' in out.lower(), out[-3000:]
    assert osp.isfile(osp.join(work_dir, 'epoch_2.pth'))
    assert 'Epoch(train) [1]' not in out and 'Epoch(train) [2][2/2]' in out

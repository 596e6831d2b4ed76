"""`tools/demo.py --task medseg` end to end on tiny generated lesion data: VM-UNet + MHS
trains 2 iterations, the binary metrics before and after, the image | ground truth |
prediction pictures and the training curves."""
import json
import os.path as osp

import numpy as np
import pytest

from tool_runner import PY, run_tool

pytest.importorskip('mmseg')
mmcv = pytest.importorskip('mmcv')

# 4 training images at 72x56, batch 2: 2 iterations, evaluated at the end
DEMO_OPTS = ['train_cfg.max_iters=2', 'train_cfg.val_interval=2',
             'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1',
             'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
             'val_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
             'val_dataloader.persistent_workers=False',
             'param_scheduler.0.end=1', 'param_scheduler.1.begin=1', 'param_scheduler.1.T_max=1',
             'param_scheduler.1.end=2']


def test_demo_medseg(demo_isic, tmp_path):
    work_dir = str(tmp_path / 'demo')
    out = run_tool([PY, 'tools/demo.py', '--task', 'medseg', '--data-root', demo_isic,
                    '--work-dir', work_dir, '--num-pictures', '2', '--cfg-options', *DEMO_OPTS],
                   env=dict(OMP_NUM_THREADS='1'))
    with open(osp.join(work_dir, 'demo_results.json')) as f:
        results = json.load(f)['medseg']
    assert results['config'] == 'configs/demo/vmunet_mhs_demo.py'
    for metrics in (results['untrained'], results['trained']):
        assert {'IoU', 'Dice', 'Accuracy', 'Sensitivity', 'Specificity'} <= set(metrics)
    assert '| IoU |' in out and '| Dice |' in out          # the before/after table
    names = sorted(osp.basename(p) for p in results['pictures'])
    assert names == ['predictions.jpg', 'training_curves.png', 'val_ISIC_0000001.png',
                     'val_ISIC_0000002.png'], names
    # image | ground-truth mask | predicted mask under a title band
    source = mmcv.imread(osp.join(demo_isic, 'val', 'images', 'ISIC_0000001.jpg'))
    picture = mmcv.imread(next(p for p in results['pictures'] if p.endswith('0001.png')))
    h, w = source.shape[:2]
    assert picture.shape[:2] == (h + 22, 3 * w + 8)
    image_panel = picture[22:, :w].astype(float)
    assert np.abs(image_panel - source).mean() < 3     # the input, as is
    truth = mmcv.imread(osp.join(demo_isic, 'val', 'masks', 'ISIC_0000001_segmentation.png'),
                        flag='grayscale') >= 128
    truth_panel = picture[22:, w + 4:2 * w + 4].mean(axis=2) > 127
    assert (truth_panel == truth).mean() > 0.99

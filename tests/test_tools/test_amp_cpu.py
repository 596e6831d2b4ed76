"""`tools/train.py --amp` without a GPU: bfloat16 autocast on the CPU (mmengine's
AmpOptimWrapper refuses CPUs), a few demo iterations per backbone with finite losses."""
import math
import os.path as osp
import re

import pytest
import torch

from tool_runner import PY, ROOT, run_tool

pytest.importorskip('mmdet')

# 2 of the generated images, shrunk to 128x102, batch 1: 2 iterations, no evaluation
TINY = ['train_cfg.max_epochs=1', 'train_dataloader.batch_size=1',
        'train_dataloader.dataset.indices=2',
        'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
        'train_dataloader.dataset.pipeline.2.scale=(128,102)', 'default_hooks.logger.interval=1',
        'default_hooks.checkpoint.interval=100', 'val_cfg=None', 'val_dataloader=None',
        'val_evaluator=None', 'test_cfg=None', 'test_dataloader=None', 'test_evaluator=None']


@pytest.mark.skipif(torch.cuda.is_available(), reason='the CPU path of --amp')
@pytest.mark.parametrize('backbone', ['mlla', 'vmamba', 'vim'])
def test_amp_trains_in_bfloat16_on_cpu(backbone, demo_coco, tmp_path):
    out = run_tool([PY, 'tools/train.py', f'configs/demo/mask_rcnn_{backbone}_demo.py', '--amp',
                    '--work-dir', str(tmp_path), '--data-root', demo_coco,
                    '--cfg-options', *TINY])
    assert 'bfloat16 autocast on the CPU' in out, out[-3000:]
    losses = [float(v) for v in re.findall(r'Epoch\(train\).*?\sloss: (\S+)', out)]
    assert len(losses) == 2, out[-3000:]
    assert all(math.isfinite(v) and v > 0 for v in losses), losses


def test_amp_dtype_float16_refused_on_cpu(tmp_path):
    if torch.cuda.is_available():
        pytest.skip('float16 is allowed on a GPU')
    from mlla_mm.utils import launch
    cfg = launch.load_config(osp.join(ROOT, 'configs/demo/mask_rcnn_mlla_demo.py'))
    with pytest.raises(ValueError, match='--amp-dtype float16 needs loss scaling'):
        launch.enable_amp(cfg, 'float16')
    launch.enable_amp(cfg)
    assert cfg.optim_wrapper.type == 'AutocastOptimWrapper'
    assert cfg.optim_wrapper.dtype == 'bfloat16'


def test_amp_on_gpu_keeps_mmengine_wrapper(monkeypatch):
    """With CUDA, --amp is mmengine's AmpOptimWrapper (float16 + dynamic loss scaling);
    --amp-dtype bfloat16 only changes its dtype (config-level check: no GPU needed)."""
    from mlla_mm.utils import launch
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    config = osp.join(ROOT, 'configs/demo/mask_rcnn_mlla_demo.py')
    cfg = launch.load_config(config)
    launch.enable_amp(cfg)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic' and 'dtype' not in cfg.optim_wrapper
    cfg = launch.load_config(config)
    launch.enable_amp(cfg, 'bfloat16')
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper' and cfg.optim_wrapper.dtype == 'bfloat16'
    with pytest.raises(ValueError, match="--amp-dtype 'float64'"):
        launch.enable_amp(cfg, 'float64')

"""`tools/train.py --amp` without a GPU: bfloat16 autocast on the CPU (mmengine's
AmpOptimWrapper refuses CPUs), a few demo iterations per backbone with finite losses.
(What --amp does to the config, CPU and GPU: tests/test_tools/test_launch.py.)"""
import math
import re

import pytest
import torch

from tool_runner import PY, run_tool

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

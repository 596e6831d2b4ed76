"""What the launchers do before a run starts (tools/train.py's checks of its arguments,
--amp's choice of optimizer wrapper, tools/slurm_train.sh's sbatch options) and after it ends
(dataloader workers stopped); a missing dataset: tests/test_datasets/test_required_paths.py."""
import importlib.util
import os
import os.path as osp
import subprocess

import pytest
import torch

from mlla_mm.utils import launch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DET = osp.join('configs', 'demo', 'mask_rcnn_mlla_demo.py')


def _train_tool():
    spec = importlib.util.spec_from_file_location('train', osp.join(ROOT, 'tools', 'train.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_config_not_found_is_named():
    with pytest.raises(FileNotFoundError, match='config file not found'):
        _train_tool().main([osp.join(ROOT, 'configs', 'no_such_config.py')])


def test_amp_dtype_float16_refused_on_cpu():
    if torch.cuda.is_available():
        pytest.skip('float16 is allowed on a GPU')
    cfg = launch.load_config(osp.join(ROOT, DET))
    with pytest.raises(ValueError, match='--amp-dtype float16 needs loss scaling'):
        launch.enable_amp(cfg, 'float16')
    launch.enable_amp(cfg)
    assert cfg.optim_wrapper.type == 'AutocastOptimWrapper'
    assert cfg.optim_wrapper.dtype == 'bfloat16'


def test_amp_on_gpu_keeps_mmengine_wrapper(monkeypatch):
    """With CUDA, --amp is mmengine's AmpOptimWrapper (float16 + dynamic loss scaling);
    --amp-dtype bfloat16 only changes its dtype (config-level check: no GPU needed)."""
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    config = osp.join(ROOT, DET)
    cfg = launch.load_config(config)
    launch.enable_amp(cfg)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic' and 'dtype' not in cfg.optim_wrapper
    cfg = launch.load_config(config)
    launch.enable_amp(cfg, 'bfloat16')
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper' and cfg.optim_wrapper.dtype == 'bfloat16'
    with pytest.raises(ValueError, match="--amp-dtype 'float64'"):
        launch.enable_amp(cfg, 'float64')


def test_slurm_train_asks_for_the_preemption_signal(tmp_path):
    fake_srun = tmp_path / 'srun'
    fake_srun.write_text('#!/bin/sh\necho "srun $@"\n')
    fake_srun.chmod(0o755)
    env = dict(os.environ, PATH=f'{tmp_path}:{os.environ["PATH"]}')
    cmd = ['bash', 'tools/slurm_train.sh', 'part', 'job', DET, 'work_dirs/x']
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True).stdout
    assert '--signal=USR1@180' in out and '--launcher=slurm' in out, out
    out = subprocess.run(cmd, cwd=ROOT, env=dict(env, SIGNAL='USR1@600'), capture_output=True,
                         text=True).stdout
    assert '--signal=USR1@600' in out


class _Dataset(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return torch.zeros(2)


def test_stop_dataloader_workers_ends_persistent_workers_at_once():
    """The runner's dataloaders' persistent workers end when asked, not 5 s per worker later
    (a queue finalizer beat the shutdown message when the garbage collector did it; see
    launch.stop_dataloader_workers), and nothing is left alive."""
    import time
    from types import SimpleNamespace

    from torch.utils.data import DataLoader
    loaders = [DataLoader(_Dataset(), batch_size=2, num_workers=1, persistent_workers=True)
               for _ in range(2)]
    for loader in loaders:
        for _ in loader:
            pass
    workers = [w for loader in loaders for w in loader._iterator._workers]
    runner = SimpleNamespace(_train_loop=SimpleNamespace(dataloader=loaders[0]),
                             _val_loop=SimpleNamespace(dataloader=loaders[1]),
                             _test_loop=dict(type='TestLoop'))      # never built: no loader
    start = time.perf_counter()
    assert launch.stop_dataloader_workers(runner) == 2
    assert time.perf_counter() - start < 3
    assert all(not w.is_alive() for w in workers)
    assert loaders[0]._iterator is None and launch.stop_dataloader_workers(runner) == 0

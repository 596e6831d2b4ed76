"""Each shim of mlla_mm.compat, shown to fix what it says, and nothing more."""
import collections
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

import mlla_mm  # noqa: F401  (applies the shims)


class _Payload:
    """Pickles to a call of os.system: what a malicious checkpoint does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def _mmengine_like_checkpoint():
    from mmengine.logging import HistoryBuffer
    buf = HistoryBuffer()
    buf.update(1.5)
    buf.update(np.float64(0.5))
    return {
        'meta': {'epoch': 1, 'iter': 10, 'seed': 0, 'dataset_meta': {'classes': ('a', 'b')}},
        'state_dict': collections.OrderedDict(w=torch.ones(2)),
        'message_hub': {'log_scalars': {'train/loss': buf},
                        'runtime_info': {'epoch': 1, 'lr': np.float32(0.1)}},
        'param_schedulers': [{'milestones': collections.Counter({8: 1, 11: 1}), 'gamma': 0.1}],
        'np_array': np.arange(3),
    }


def test_mmengine_checkpoint_loads_with_weights_only(tmp_path):
    path = tmp_path / 'epoch_1.pth'
    torch.save(_mmengine_like_checkpoint(), path)
    loaded = torch.load(path, weights_only=True)
    assert loaded['message_hub']['log_scalars']['train/loss'].mean() == 1.0
    assert loaded['param_schedulers'][0]['milestones'][8] == 1
    # and through mmengine, as --resume does
    from mmengine.runner.checkpoint import _load_checkpoint
    assert _load_checkpoint(str(path), map_location='cpu')['meta']['epoch'] == 1


def test_malicious_checkpoint_is_refused(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': torch.ones(1)}, 'x': _Payload(marker)}, path)
    from mmengine.runner.checkpoint import _load_checkpoint
    with pytest.raises(pickle.UnpicklingError):
        _load_checkpoint(str(path), map_location='cpu')   # the --resume / load_from path
    assert not marker.exists(), 'the payload ran'


def test_pretrained_loader_keeps_tensors_and_never_runs_payload(tmp_path):
    """Official releases pickle their config objects; our pretrained reader keeps the
    tensors and replaces foreign objects by inert stand-ins."""
    from mlla_mm.utils.checkpoint import read_checkpoint
    marker = tmp_path / 'pwned'
    path = tmp_path / 'official.pth'
    torch.save({'model': {'w': torch.arange(3.)}, 'config': _Payload(marker)}, path)
    ckpt = read_checkpoint(str(path))
    assert torch.equal(ckpt['model']['w'], torch.arange(3.))
    assert not marker.exists()
    assert type(ckpt['config']).__module__.startswith('untrusted.')


_DIST_SCRIPT = r'''
import os, torch, types
os.environ.update(RANK='0', WORLD_SIZE='1', LOCAL_RANK='0', MASTER_ADDR='127.0.0.1',
                  MASTER_PORT=os.environ['PORT'])
import mlla_mm
from mmengine.dist import init_dist, get_world_size
init_dist('pytorch', backend='nccl')          # what the configs ask for
assert torch.distributed.get_backend() == 'gloo'
from mmengine.model import MMDistributedDataParallel
ddp = MMDistributedDataParallel(module=torch.nn.Linear(2, 2), device_ids=[0])
ddp(torch.ones(1, 2)).sum().backward()
from mmengine.runner import Runner
from mmengine.logging import MMLogger
model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.SyncBatchNorm(4))
fake = types.SimpleNamespace(distributed=True, cfg={}, logger=MMLogger.get_instance('t'))
wrapped = Runner.wrap_model(fake, None, model)
assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in wrapped.modules())
wrapped(torch.ones(2, 3, 4, 4)).sum().backward()
print('OK')
'''


@pytest.mark.e2e   # a fresh Python process: not in make test-fast
@pytest.mark.skipif(torch.cuda.is_available(), reason='the CPU fallbacks apply without CUDA')
def test_distributed_on_cpu_uses_gloo_no_device_ids_and_bn():
    env = dict(os.environ, PORT='29533')
    out = subprocess.run([sys.executable, '-c', _DIST_SCRIPT], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0 and 'OK' in out.stdout, out.stderr[-3000:]


def test_checkpoint_writes_are_atomic(tmp_path, monkeypatch):
    from mmengine.fileio.backends.local_backend import LocalBackend
    target = tmp_path / 'epoch_1.pth'
    LocalBackend().put(b'complete', target)
    assert target.read_bytes() == b'complete'
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask   # as open() would, not 0600

    def crash(*args, **kwargs):
        raise OSError('disk full')

    monkeypatch.setattr(os, 'replace', crash)
    with pytest.raises(OSError):
        LocalBackend().put(b'half-writ', target)
    assert target.read_bytes() == b'complete', 'a failed write must not clobber the old file'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['epoch_1.pth'], 'temp file left'


def test_shims_are_idempotent():
    from mlla_mm import compat
    from mmengine.dist import utils
    before = utils._init_dist_pytorch
    compat._APPLIED = False
    compat.apply()
    assert utils._init_dist_pytorch is before

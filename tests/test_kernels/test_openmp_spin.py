"""mlla_kernels.openmp: importing mlla_kernels (or mlla_mm) before torch shortens libgomp's
spin-waits, so the numba kernels' threads are not left sharing a core with a spinning OpenMP
thread; a value the user set, or MLLA_OPENMP_SPIN=default, is left alone."""
import json
import os
import subprocess
import sys

import pytest

from mlla_kernels import openmp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# CPU time the process's other threads burn per idle gap after a small parallel matmul,
# beyond their share of the matmul: libgomp's spin-wait before its workers sleep
PROBE = r'''
import json, sys, time
import mlla_kernels  # before torch, as tools/train.py imports mlla_mm
import torch
torch.set_num_threads(2)
a = torch.randn(256, 256)
for _ in range(3):
    a @ a
main, start = 0.0, time.process_time()
for _ in range(20):
    t = time.thread_time()
    a @ a
    main += time.thread_time() - t
    time.sleep(0.02)
others = time.process_time() - start - main
print(json.dumps(dict(spin_ms=1e3 * (others - main) / 20,
                      gomp=__import__('os').environ.get('GOMP_SPINCOUNT'))))
'''


def _probe(**env):
    environ = {k: v for k, v in os.environ.items()
               if k not in (*openmp.OPENMP_WAIT_VARS, openmp.ENV)}
    out = subprocess.run([sys.executable, '-c', PROBE], capture_output=True, text=True,
                         env=dict(environ, PYTHONPATH=ROOT, **env), check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_sets_the_spin_count_unless_chosen():
    env = {}
    assert openmp.shorten_openmp_spin(env) is False   # torch is imported in this process
    assert env == {'GOMP_SPINCOUNT': str(openmp.SPIN_COUNT)}
    for chosen in ({'GOMP_SPINCOUNT': '5'}, {'OMP_WAIT_POLICY': 'ACTIVE'},
                   {openmp.ENV: 'default'}):
        env = dict(chosen)
        assert openmp.shorten_openmp_spin(env) is True   # the user's choice: no hint
        assert env == chosen


@pytest.mark.e2e
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason='needs 2 cores for a spinning worker')
def test_import_before_torch_shortens_the_spin():
    default = _probe(**{openmp.ENV: 'default'})
    assert default['gomp'] is None
    if default['spin_ms'] < 1.0:
        pytest.skip(f"this OpenMP runtime spins {default['spin_ms']:.2f} ms when idle")
    ours = _probe()
    assert ours['gomp'] == str(openmp.SPIN_COUNT)
    assert ours['spin_ms'] < default['spin_ms'] / 3, (ours, default)


WARN_PROBE = r'''
import warnings
import torch   # first: libgomp has read its environment before mlla_kernels is imported
import mlla_kernels
torch.set_num_threads(THREADS)
x = torch.randn(1, 8, 8, 4)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    for _ in range(2):
        mlla_kernels.depthwise_conv2d(x, torch.randn(4, 3, 3), backend='numba')
print(sum('GOMP_SPINCOUNT' in str(w.message) for w in caught))
'''


@pytest.mark.e2e
@pytest.mark.parametrize('threads,warnings', [(2, 1), (1, 0)])
def test_torch_first_warns_once_on_several_threads(threads, warnings):
    pytest.importorskip('numba')
    environ = {k: v for k, v in os.environ.items()
               if k not in (*openmp.OPENMP_WAIT_VARS, openmp.ENV)}
    out = subprocess.run([sys.executable, '-c', WARN_PROBE.replace('THREADS', str(threads))],
                         capture_output=True, text=True, env=dict(environ, PYTHONPATH=ROOT),
                         check=True)
    assert out.stdout.strip().splitlines()[-1] == str(warnings)

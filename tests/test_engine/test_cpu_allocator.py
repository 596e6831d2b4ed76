"""mlla_mm.utils.cpu_allocator: freed memory is kept for the next step (no page faults), and
MLLA_CPU_ALLOCATOR=default leaves glibc's malloc alone. Each case in a fresh process: the
setting is process-wide."""
import json
import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc malloc')]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# page faults of one "step" (a 64 MiB tensor written through, then freed) after seven others:
# torch's 64-byte-aligned blocks settle into reuse after a few steps (each aligned request
# first takes fresh memory until freed blocks have merged), glibc's defaults never do
PROBE = r'''
import json, resource, sys
import torch
from mlla_mm.utils.cpu_allocator import keep_freed_memory
applied = keep_freed_memory()
def faults_of_one_step():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.empty(16 << 20)
    x.fill_(1.0)
    del x
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
for _ in range(7):
    faults_of_one_step()
print(json.dumps(dict(applied=applied, faults=faults_of_one_step())))
'''


def _probe(**env):
    out = subprocess.run([sys.executable, '-c', PROBE], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=ROOT, **env), check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_second_step_reuses_the_memory_the_first_freed():
    kept = _probe()
    assert kept['applied']
    assert kept['faults'] < 1000, kept          # 64 MiB = 16384 pages when faulted afresh


def test_default_leaves_malloc_alone():
    default = _probe(MLLA_CPU_ALLOCATOR='default')
    assert not default['applied']
    assert default['faults'] > 10000, default   # glibc maps and unmaps a block this large

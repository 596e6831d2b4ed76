"""Running the tools as a user does: ``python tools/X.py ARGS`` in a fresh process.

A fresh interpreter spends ~10 s of CPU importing torch, mmcv, mmdet, mmseg and mlla_mm
before the tool does anything -- most of a tiny end-to-end run. So Python tools run in a
process forked from a *zygote*: a server process (multiprocessing's forkserver) that has
imported that stack once and never ran a tensor operation (forking a process whose OpenMP
threads have run hangs the child). Each run is still its own process started from a clean
state: its own environment, working directory, ``sys.argv``, signal handlers, exit status,
stdout and stderr; only the imports are done already. The script runs as ``python SCRIPT``
runs it (``runpy``, ``__name__ == '__main__'``, its folder first on ``sys.path``,
``atexit`` handlers at the end). Anything else (bash scripts, torchrun) runs as a real
subprocess; ``fresh=True`` forces one (tests about the start-up itself).
"""
import atexit
import multiprocessing
import os
import os.path as osp
import runpy
import subprocess
import sys
import tempfile

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PY = sys.executable
# what the tools import at start-up (tools/train.py: mlla_mm, then the codebase's models)
PRELOAD = ['mlla_mm', 'mmengine.runner', 'mmdet.models', 'mmdet.evaluation', 'mmseg.models',
           'mmseg.evaluation', 'mmpretrain.models']


def threads() -> int:
    """The tools get the torch threads of this test process (all cores; under pytest-xdist
    the worker's share)."""
    import torch
    return torch.get_num_threads()


def _zygote():
    context = multiprocessing.get_context('forkserver')
    context.set_forkserver_preload(PRELOAD)
    return context


def _run_script(script, args, cwd, env, out_path):
    """The child: ``python script args`` with the imports already done."""
    fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.environ.clear()
    os.environ.update(env)
    if env.get('OMP_NUM_THREADS'):   # read by OpenMP when torch was imported: apply it
        import torch
        torch.set_num_threads(int(env['OMP_NUM_THREADS']))
    os.chdir(cwd)
    sys.argv = [script, *args]
    sys.path.insert(0, osp.dirname(osp.abspath(script)))
    try:
        runpy.run_path(script, run_name='__main__')
    finally:
        atexit._run_exitfuncs()   # multiprocessing ends its children with os._exit


def run(args, timeout=600, env=None, fresh=False, cwd=ROOT):
    """``(exit status, stdout + stderr)`` of a tool run as a user would (in ``cwd``)."""
    full_env = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS=str(threads()))
    full_env.update(env or {})
    if fresh or args[0] != PY or not args[1].endswith('.py'):
        proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              env=full_env)
        return proc.returncode, proc.stdout + proc.stderr
    with tempfile.NamedTemporaryFile(suffix='.log') as log:
        child = _zygote().Process(target=_run_script,
                                  args=(args[1], args[2:], cwd, full_env, log.name))
        child.start()
        child.join(timeout)
        if child.exitcode is None:
            child.kill()
            child.join()
            pytest.fail(f'{" ".join(args)} did not finish within {timeout} s')
        with open(log.name, errors='replace') as f:
            return child.exitcode, f.read()


def run_tool(args, timeout=600, env=None, fresh=False, cwd=ROOT):
    """Run a tool as a user would; fail the test with its output unless it exits 0."""
    code, out = run(args, timeout, env, fresh, cwd)
    if code != 0:
        pytest.fail(f'{" ".join(args)} exited {code}\n--- output ---\n{out[-12000:]}')
    return out

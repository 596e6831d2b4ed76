import os
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='session')
def demo_coco(tmp_path_factory):
    from mlla_mm.datasets.demo_data import generate_coco_instance
    root = str(tmp_path_factory.mktemp('demo_coco'))
    generate_coco_instance(root, num_train=8, num_val=4, image_size=(160, 128),
                           object_size=(24, 60), seed=1)
    return root


@pytest.fixture(scope='session')
def demo_ade20k(tmp_path_factory):
    from mlla_mm.datasets.demo_data import generate_ade20k_semantic
    root = str(tmp_path_factory.mktemp('demo_ade20k'))
    generate_ade20k_semantic(root, num_train=6, num_val=3, image_size=(160, 128),
                             object_size=(24, 60), seed=1)
    return root


def run_tool(args, timeout=600, env=None):
    """Run a tool as a user would (fresh process); fail the test with its output."""
    full_env = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='2')
    full_env.update(env or {})
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env=full_env)
    if proc.returncode != 0:
        pytest.fail(f'{" ".join(args)} exited {proc.returncode}\n--- stdout ---\n'
                    f'{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-6000:]}')
    return proc.stdout + proc.stderr


PY = sys.executable

"""Test-wide settings and the generated datasets every test shares.

Without a GPU, Triton kernels run under Triton's interpreter; the variable must
be set before any kernel module is imported, hence here.
"""
import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault('TRITON_INTERPRET', '1')


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope='session')
def demo_coco(tmp_path_factory):
    """COCO layout: 8 train / 4 val images at 160x128, the 4 demo shape classes."""
    from mlla_mm.datasets.demo_data import generate_coco_instance
    root = str(tmp_path_factory.mktemp('demo_coco'))
    generate_coco_instance(root, num_train=8, num_val=4, image_size=(160, 128),
                           object_size=(24, 60), seed=1)
    return root


@pytest.fixture(scope='session')
def demo_ade20k(tmp_path_factory):
    """ADE20K layout: 6 train / 3 val images at 160x128, 8 classes."""
    from mlla_mm.datasets.demo_data import generate_ade20k_semantic
    root = str(tmp_path_factory.mktemp('demo_ade20k'))
    generate_ade20k_semantic(root, num_train=6, num_val=3, image_size=(160, 128),
                             object_size=(24, 60), seed=1)
    return root

"""Test-wide settings.

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

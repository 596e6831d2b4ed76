"""The old name of this folder's ``torch`` module (modules are named after their backend);
kept importable as the same module object, so settings patched here apply."""
import sys

from . import torch as _torch_backend

sys.modules[__name__] = _torch_backend

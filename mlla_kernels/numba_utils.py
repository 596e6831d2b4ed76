"""The old home of the numba engine, now :mod:`mlla_kernels.routed_scan.numba`; kept
importable as the same module object."""
import sys

from .routed_scan import numba as _engine

sys.modules[__name__] = _engine

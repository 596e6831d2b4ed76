"""The old home of the Triton engine, now :mod:`mlla_kernels.routed_scan.triton`; kept
importable as the same module object."""
import sys

from .routed_scan import triton as _engine

sys.modules[__name__] = _engine

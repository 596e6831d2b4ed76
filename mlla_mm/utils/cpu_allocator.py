"""Keep the memory one CPU training step frees for the next (glibc malloc tuning).

A training step allocates and frees the same large tensors every iteration (activations,
gradients, the scans' outputs). With glibc's defaults, blocks above its mmap threshold (128
KiB, rising with use up to 32 MiB) are mapped afresh and unmapped on free, and freed memory at
the top of the heap is handed back to the kernel beyond a trim threshold. The next step then
page-faults every page of its new tensors again: the kernel zeroes each 4 KiB page on first
touch, serially for the threads of one process. Measured on the 2-core box, one VMamba-T
stage-0 scan (4 routes, 128 x 128 map): its backward took 36-41 ms with the defaults and
17-20 ms with freed memory kept, its outputs (25 MiB of ddelta) no longer faulted in inside
the kernel. The same holds for every model (Swin-T's training step too), so
:func:`keep_freed_memory` is process-wide: ``tools/train.py`` and ``tools/test.py`` call it
(through :func:`mlla_mm.utils.launch.build_runner`), as do the timing workers of the
side-by-side benchmark (:mod:`mlla_mm.analysis.side_by_side`), so that they time what the tools
run; the resolution-scaling benchmark (:mod:`mlla_mm.analysis.benchmark`) keeps glibc's
defaults.

What it does: ``mallopt(M_MMAP_THRESHOLD, 1 GiB)`` (allocations below it come from malloc's
heap and are reused; glibc versions that refuse so high a value get 32 MiB, their maximum) and
``mallopt(M_TRIM_THRESHOLD, 2 GiB)`` (freed memory stays in the process). The cost: the
process keeps its peak memory after a step instead of returning part of it between steps,
which a training process reaches every step anyway. Elsewhere (not Linux with glibc) it does
nothing. ``MLLA_CPU_ALLOCATOR=default`` leaves malloc as it is; jemalloc or tcmalloc through
``LD_PRELOAD`` (PyTorch's CPU performance guide) do the same job and make this a no-op.
"""
import ctypes
import os
import sys

ENV = 'MLLA_CPU_ALLOCATOR'
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: blocks up to this size come from the heap (reused across steps)
MMAP_THRESHOLD = 1 << 30
#: the most glibc versions that cap the threshold accept (HEAP_MAX_SIZE / 2 on 64-bit)
MMAP_THRESHOLD_CAPPED = 32 << 20
#: freed memory kept in the process before malloc trims the heap (mallopt takes an int)
TRIM_THRESHOLD = (1 << 31) - 1

_applied = None


def keep_freed_memory() -> bool:
    """Tune glibc's malloc to keep freed memory for reuse (see the module docstring); once per
    process. Returns whether the settings are in effect."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get(ENV, '').strip().lower() == 'default' or not sys.platform.startswith(
            'linux'):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # glibc only: musl's mallopt is a stub
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    if not (mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
            or mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_CAPPED)):
        return False
    _applied = bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _applied


__all__ = ['keep_freed_memory', 'ENV']

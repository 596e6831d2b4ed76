"""Short OpenMP spin-waits, so the numba kernels' threads get the cores PyTorch's threads left.

PyTorch's CPU ops run on an OpenMP thread pool (GNU libgomp in the pip wheels). When a parallel
region ends, libgomp's worker threads keep spinning for work for a while (``GOMP_SPINCOUNT``:
300000 iterations by default, several milliseconds) before they sleep. The numba kernels run
their programs on threads of their own (:func:`mlla_kernels.routed_scan.numba._run`), so after
every matmul a kernel's second thread shared its core with a spinning OpenMP thread, and the
kernels took as long with two threads as with one. Measured on the 2-core box (AMD EPYC, 2
threads), one MLLA-T stage-0 block: linear attention 7.4 -> 4.1 ms forward, 19 -> 9-10 ms
backward, depthwise convs 3.6 -> 2.2 / 7.8 -> 4.5 ms; training steps at 512² (median of two
runs): Vim-Ti 894 -> 610 ms, MLLA-T 1170 -> 1026, VMamba-T 1166 -> 1090, while Swin-T and
ViT-Ti, which have no numba kernel, measured the same with 10000 spins (1046 / 988 ms, 441 /
446 ms); with no spinning at all (``OMP_WAIT_POLICY=PASSIVE``) Swin-T lost ~6 %.

libgomp reads its environment once, when it is loaded (``import torch``), so the setting has to
be in the environment before that: :func:`shorten_openmp_spin` runs first thing in
``import mlla_kernels`` (and ``import mlla_mm`` imports mlla_kernels first), which is before
torch in ``tools/train.py``, ``tools/test.py``, ``tools/demo.py`` and ``tools/infer.py``.
A process that imported torch earlier (another codebase's tools with ``custom_imports``) keeps
the long spins and is warned once, when a numba kernel first runs on several threads
(:func:`warn_if_spinning`): set ``GOMP_SPINCOUNT=10000`` in its environment (child processes
started later get it from here either way). A ``GOMP_SPINCOUNT`` or ``OMP_WAIT_POLICY`` already
set is left alone; ``MLLA_OPENMP_SPIN=default`` leaves libgomp's default (a demo-sized model,
whose step is many small PyTorch ops, may prefer it: docs/speed.md).

This module imports nothing but the standard library (it must run before torch loads).
"""
import os
import sys

ENV = 'MLLA_OPENMP_SPIN'
#: libgomp's spin iterations before an idle worker sleeps (its default: 300000)
SPIN_COUNT = 10000
#: the variables that already decide libgomp's waiting: a user's value wins
OPENMP_WAIT_VARS = ('GOMP_SPINCOUNT', 'OMP_WAIT_POLICY')


#: whether this process's libgomp reads a chosen waiting (ours or the user's); set on import
#: of mlla_kernels by :func:`shorten_openmp_spin`
configured_before_torch = None
#: whether :func:`shorten_openmp_spin` put ``GOMP_SPINCOUNT`` into this process's environment
#: (child processes inherit it; the side-by-side benchmark takes it out again, so that each
#: checkout it measures runs as its own tools do)
set_by_import = False


def shorten_openmp_spin(environ=None) -> bool:
    """Set ``GOMP_SPINCOUNT`` to :data:`SPIN_COUNT` in ``environ`` (default: this process's)
    unless the waiting is chosen already (``GOMP_SPINCOUNT``/``OMP_WAIT_POLICY`` set, or
    ``MLLA_OPENMP_SPIN=default``). Returns whether this process's OpenMP runtime reads a chosen
    waiting: False when torch was imported before (libgomp has read its environment; child
    processes still get the variable). Only a call on the process's environment updates
    :data:`configured_before_torch` and :data:`set_by_import`."""
    global configured_before_torch, set_by_import
    own = environ is None
    environ = os.environ if own else environ
    if environ.get(ENV, '').strip().lower() == 'default' or any(
            name in environ for name in OPENMP_WAIT_VARS):
        configured = True    # the user's choice, whenever it was made
    else:
        environ['GOMP_SPINCOUNT'] = str(SPIN_COUNT)
        configured = 'torch' not in sys.modules
        if own:
            set_by_import = True
    if own:
        configured_before_torch = configured
    return configured


HINT = ('libgomp was loaded (import torch) before mlla_kernels could shorten its spin-waits: '
        'the numba kernels will share cores with spinning OpenMP threads (up to 2x slower '
        f'with 2 threads). Start the process with GOMP_SPINCOUNT={SPIN_COUNT} in its '
        'environment, or import mlla_mm before torch (see mlla_kernels/openmp.py).')


_warned = False


def warn_if_spinning() -> None:
    """Warn once per process when the numba kernels are about to run on several threads beside
    libgomp workers that spin long (torch was imported before mlla_kernels, the user chose no
    waiting). Called by :func:`mlla_kernels.dispatch.get_impl` for the numba backend."""
    global _warned
    if _warned or configured_before_torch is not False:
        return
    import torch
    if torch.get_num_threads() > 1:
        import warnings
        _warned = True
        warnings.warn(HINT, RuntimeWarning, stacklevel=3)


__all__ = ['shorten_openmp_spin', 'warn_if_spinning', 'HINT', 'SPIN_COUNT', 'ENV']

"""Where the numba engine keeps its compiled kernels: once per machine, not once per checkout.

numba's own cache sits next to the source (``__pycache__``) or under a folder named after the
source's absolute path, so every clone, worktree or fresh ``pip install`` compiles every kernel
signature again (minutes on a small CPU). Here the compiled code lives in one per-user folder,
keyed by the CONTENT of the numba engine: ``<root>/<engine hash>/<op folder>/``, where

- ``<root>`` is ``$NUMBA_CACHE_DIR/mlla_kernels`` when ``NUMBA_CACHE_DIR`` is set, else the
  user cache folder (``~/.cache/mlla_kernels/numba`` on Linux);
- ``<engine hash>`` hashes every ``numba*.py`` of the package together (but this file, which
  compiles nothing): a kernel calls the shared code of ``routed_scan/numba_math.py`` and
  ``numba_common.py``, and numba's own freshness check looks at the kernel's file only, so
  editing any of them starts a fresh folder (two checkouts at different versions do not evict
  each other);
- numba's index inside adds what the compiled code depends on beyond the source: the numba
  version, the signature, and the CPU (target triple, name and features);
- a copy of the package imported under another name (``python -m mlla_kernels.benchmark
  --against DIR`` loads one as ``mlla_kernels_before``) gets ``<engine hash>-<its name>``: the
  cached code's pickles name the module they were compiled in (its named tuples), so a folder
  shared between two names fails to load in the other one.

Functions of other packages compiled with the engine's ``jit`` (mlla_mm's DCNv4 kernels) go to
``<root>/<engine hash>/<module>-<hash of their file>``. Where that folder is not writable,
numba's usual locations are tried (next to the source, the user cache keyed by path); where none
is, the kernels compile in memory once per process (``numba_math.jit`` warns).
``MLLA_KERNELS_NUMBA_CACHE=0`` turns the disk cache off; a numba-wide
``NUMBA_CACHE_LOCATOR_CLASSES`` is obeyed as numba obeys it. Old engine folders are not pruned:
delete ``<root>`` to reclaim the space.
"""
import glob
import hashlib
import os
import os.path as osp
from functools import lru_cache

from numba.core import config
from numba.core.caching import (CompileResultCacheImpl, FunctionCache, _CacheLocator,
                                _SourceFileBackedLocatorMixin)
from numba.misc.appdirs import AppDirs

PACKAGE_DIR = osp.dirname(osp.realpath(__file__))
#: the name this copy of the package is imported under
PACKAGE_NAME = __name__.rpartition('.')[0]


def cache_root() -> str:
    """The per-user folder of every engine version's compiled kernels."""
    if config.CACHE_DIR:
        return osp.join(config.CACHE_DIR, 'mlla_kernels')
    return osp.join(AppDirs(appname='mlla_kernels', appauthor=False).user_cache_dir, 'numba')


def engine_hash(package_dir: str = PACKAGE_DIR) -> str:
    """sha256 (16 hex digits) of the numba engine's sources: names and contents."""
    digest = hashlib.sha256()
    for path in sorted(glob.glob(osp.join(package_dir, '**', 'numba*.py'), recursive=True)):
        if osp.basename(path) == osp.basename(__file__):
            continue
        digest.update(osp.relpath(path, package_dir).replace(os.sep, '/').encode())
        with open(path, 'rb') as f:
            digest.update(f.read())
    return digest.hexdigest()[:16]


@lru_cache(maxsize=None)
def _this_engine_hash() -> str:
    return engine_hash()


def engine_cache_dir() -> str:
    """This engine version's folder under :func:`cache_root` (for a copy imported under
    another name than ``mlla_kernels``, a folder of that name's own)."""
    folder = _this_engine_hash()
    if PACKAGE_NAME != 'mlla_kernels':
        folder = f'{folder}-{PACKAGE_NAME}'
    return osp.join(cache_root(), folder)


def _file_hash(path: str) -> str:
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


class MachineCacheLocator(_SourceFileBackedLocatorMixin, _CacheLocator):
    """numba cache locator of the functions compiled by ``numba_math.jit``: those of this
    package in ``<engine folder>/<op folder>``; those of a module elsewhere that builds on the
    engine (mlla_mm's DCNv4 kernels) in ``<engine folder>/<module name>-<its content hash>``."""

    def __init__(self, py_func, py_file):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        real = osp.realpath(py_file)
        if osp.commonpath([real, PACKAGE_DIR]) == PACKAGE_DIR:
            folder = osp.relpath(osp.dirname(real), PACKAGE_DIR).replace(os.sep, '.')
        else:
            folder = f'{py_func.__module__}-{_file_hash(real)}'
        self._cache_path = osp.join(engine_cache_dir(), folder)

    def get_cache_path(self):
        return self._cache_path


class _KernelCacheImpl(CompileResultCacheImpl):
    _locator_classes = [MachineCacheLocator] + CompileResultCacheImpl._locator_classes


class KernelCache(FunctionCache):
    """numba's per-function cache with :class:`MachineCacheLocator` tried first."""
    _impl_class = _KernelCacheImpl


def enable_machine_cache(dispatcher):
    """Make a ``njit(cache=False)`` dispatcher cache on disk as ``cache=True`` would, but in
    :func:`engine_cache_dir` (numba's own locations where that is not writable). Raises
    numba's RuntimeError where no location is writable."""
    dispatcher._cache = KernelCache(dispatcher.py_func)   # what Dispatcher.enable_caching sets
    return dispatcher

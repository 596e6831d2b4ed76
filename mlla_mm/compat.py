"""Compatibility shims: the pinned OpenMMLab releases on torch >= 2.6, numpy 2 and CPU-only machines.

Every shim lives here, is applied once on ``import mlla_mm`` (so stock mmdet/mmseg
tools get them too through ``custom_imports``), and is covered by
``tests/test_compat.py``. Each one fixes a measured failure:

1. ``--resume`` / ``load_from`` died with "Weights only load failed": torch >= 2.6
   loads with ``weights_only=True`` by default and mmengine checkpoints carry
   a few non-tensor types. We allow-list exactly those types
   (:func:`mmengine_checkpoint_globals`) instead of turning ``weights_only`` off,
   so a checkpoint carrying any other global -- e.g. a malicious pickle payload --
   is still refused. One of them, ``HistoryBuffer``, also pickled its statistics
   *functions*, which unpickle through ``builtins.getattr`` -- a global that would
   open the door to arbitrary calls if allowed. Those functions are class-level
   and re-registered on import anyway, so the buffer now pickles without them
   (checkpoints written by stock mmengine keep needing ``weights_only=False``).
2. ``--launcher pytorch`` died in mmengine's ``init_dist`` on a machine without CUDA
   (``torch.cuda.set_device``). Without CUDA we skip it and use the gloo backend.
3. ``MMDistributedDataParallel`` was given ``device_ids=[LOCAL_RANK]`` for a CPU
   model, which DDP rejects. Without CUDA we pass no ``device_ids``.
4. SyncBN (mmseg heads) has no CPU implementation; in a distributed CPU run it is
   converted back to BatchNorm, with a warning.
5. mmengine writes checkpoints (and ``last_checkpoint``) in place, so a crash or a
   full disk mid-write leaves a truncated file that ``--resume`` then chokes on.
   Local writes now go to a temporary file in the same folder, then ``os.replace``.
6. mmcv's CPU kernels (``nms``, ``RoIAlign``) have no bfloat16 path ("expected scalar type
   Float but found BFloat16"), so Mask R-CNN died under CPU autocast (``--amp`` without a
   GPU). Under CPU autocast their inputs are now cast to float32. Applied by
   :class:`~mlla_mm.engine.AutocastOptimWrapper` when built (importing ``mmcv.ops`` here
   would slow down ``import mlla_mm`` and require mmcv).
"""
import collections
import functools
import os
import warnings

import torch

_APPLIED = False


def _numpy_globals() -> list:
    import numpy as np
    core = getattr(np, '_core', None) or np.core  # numpy 2 renamed core -> _core
    items = [core.multiarray._reconstruct, core.multiarray.scalar, np.ndarray, np.dtype]
    # dtype classes, e.g. numpy.dtypes.Float64DType, pickled with every array/scalar
    items += [type(np.dtype(t)) for t in (np.float16, np.float32, np.float64, np.int8,
                                          np.int16, np.int32, np.int64, np.uint8, np.bool_)]
    # numpy 2 pickles arrays/scalars through numpy._core; checkpoints written under numpy 1
    # name numpy.core. Register both spellings.
    for fn in (core.multiarray._reconstruct, core.multiarray.scalar):
        items.append((fn, f'numpy.core.multiarray.{fn.__name__}'))
        items.append((fn, f'numpy._core.multiarray.{fn.__name__}'))
    return items


def mmengine_checkpoint_globals() -> list:
    """Non-tensor types that mmengine/mmdet/mmseg write into training checkpoints."""
    from mmengine.logging.history_buffer import HistoryBuffer
    return [HistoryBuffer, collections.Counter, collections.OrderedDict,
            collections.defaultdict] + _numpy_globals()


def allow_mmengine_checkpoint_types() -> None:
    """Shim 1: allow-list (not disable) what ``weights_only=True`` must accept."""
    from mmengine.logging.history_buffer import HistoryBuffer
    torch.serialization.add_safe_globals(mmengine_checkpoint_globals())
    if not getattr(HistoryBuffer.__getstate__, '_mlla_mm_patched', False):
        def __getstate__(self) -> dict:
            # statistics functions stay out of the pickle (see the module docstring)
            return {k: v for k, v in self.__dict__.items() if k != 'statistics_methods'}

        __getstate__._mlla_mm_patched = True
        HistoryBuffer.__getstate__ = __getstate__


def _cuda_usable() -> bool:
    return torch.cuda.is_available()


def patch_init_dist_for_cpu() -> None:
    """Shim 2: ``init_dist`` without CUDA: no ``set_device``, gloo backend."""
    from mmengine.dist import utils as dist_utils
    original = dist_utils._init_dist_pytorch
    if getattr(original, '_mlla_mm_patched', False):
        return

    @functools.wraps(original)
    def _init_dist_pytorch(backend, init_backend='torch', **kwargs):
        if _cuda_usable():
            return original(backend, init_backend=init_backend, **kwargs)
        if backend != 'gloo':
            warnings.warn(f'no CUDA device: distributed backend {backend!r} -> gloo')
        torch.distributed.init_process_group(backend='gloo', **kwargs)

    _init_dist_pytorch._mlla_mm_patched = True
    dist_utils._init_dist_pytorch = _init_dist_pytorch


def patch_ddp_for_cpu() -> None:
    """Shim 3: no ``device_ids`` for DDP when the model lives on the CPU."""
    from mmengine.model.wrappers.distributed import MMDistributedDataParallel
    original = MMDistributedDataParallel.__init__
    if getattr(original, '_mlla_mm_patched', False):
        return

    @functools.wraps(original)
    def __init__(self, module, *args, **kwargs):
        on_cpu = all(p.device.type == 'cpu' for p in module.parameters())
        if on_cpu and kwargs.get('device_ids') is not None:
            kwargs['device_ids'] = None
            kwargs.pop('output_device', None)
        original(self, module, *args, **kwargs)

    __init__._mlla_mm_patched = True
    MMDistributedDataParallel.__init__ = __init__


def patch_syncbn_for_cpu() -> None:
    """Shim 4: SyncBN -> BN in distributed runs without CUDA (warns)."""
    from mmengine.model import revert_sync_batchnorm
    from mmengine.runner import Runner
    original = Runner.wrap_model
    if getattr(original, '_mlla_mm_patched', False):
        return

    @functools.wraps(original)
    def wrap_model(self, model_wrapper_cfg, model):
        if self.distributed and not _cuda_usable():
            has_syncbn = any(isinstance(m, torch.nn.SyncBatchNorm) or
                             type(m).__name__ == 'SyncBatchNorm' for m in model.modules())
            if has_syncbn:
                self.logger.warning('no CUDA device: SyncBatchNorm has no CPU implementation, '
                                    'converting it to BatchNorm (statistics are per process)')
                model = revert_sync_batchnorm(model)
        return original(self, model_wrapper_cfg, model)

    wrap_model._mlla_mm_patched = True
    Runner.wrap_model = wrap_model


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def patch_atomic_local_writes() -> None:
    """Shim 5: local files (checkpoints) are written to a temp file, then renamed."""
    from mmengine.fileio.backends.local_backend import LocalBackend
    original = LocalBackend.put
    if getattr(original, '_mlla_mm_patched', False):
        return

    @functools.wraps(original)
    def put(self, obj, filepath):
        import tempfile
        filepath = str(filepath)
        folder = os.path.dirname(os.path.abspath(filepath))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix='.tmp-', suffix=os.path.basename(filepath))
        os.chmod(tmp, 0o666 & ~_umask())   # mkstemp makes it 0600; a plain open() would not
        try:
            with os.fdopen(fd, 'wb') as f:
                f.write(obj)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, filepath)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise

    put._mlla_mm_patched = True
    LocalBackend.put = put


def _float32_under_cpu_autocast(fn):
    """``fn`` computed in float32 (autocast off) while CPU autocast is on; its floating
    outputs are given back in the dtype of its first floating input."""
    if getattr(fn, '_mlla_mm_patched', False):
        return fn

    def cast(value, dtype):
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return value.to(dtype)
        if isinstance(value, (tuple, list)):
            return type(value)(cast(v, dtype) for v in value)
        return value

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not torch.is_autocast_enabled('cpu'):
            return fn(*args, **kwargs)
        floats = [a for a in (*args, *kwargs.values())
                  if isinstance(a, torch.Tensor) and a.is_floating_point()]
        if not floats or all(a.dtype == torch.float32 for a in floats):
            with torch.autocast('cpu', enabled=False):
                return fn(*args, **kwargs)
        with torch.autocast('cpu', enabled=False):
            out = fn(*[cast(a, torch.float32) for a in args],
                     **{k: cast(v, torch.float32) for k, v in kwargs.items()})
        return cast(out, floats[0].dtype)

    wrapper._mlla_mm_patched = True
    return wrapper


def patch_mmcv_ops_for_cpu_autocast() -> bool:
    """Shim 6: mmcv's nms and RoIAlign run in float32 under CPU autocast. False without mmcv ops."""
    import importlib
    try:
        nms_module = importlib.import_module('mmcv.ops.nms')
        roi_align_module = importlib.import_module('mmcv.ops.roi_align')
    except Exception:  # mmcv not installed, or built without ops
        return False
    # batched_nms looks `nms` up in its module at call time, so patching the module global
    # covers every caller; mmdet's RoI extractors call RoIAlign modules.
    nms_module.nms = _float32_under_cpu_autocast(nms_module.nms)
    roi_align_module.RoIAlign.forward = _float32_under_cpu_autocast(
        roi_align_module.RoIAlign.forward)
    return True


def apply() -> None:
    """Apply every shim once (idempotent)."""
    global _APPLIED
    if _APPLIED:
        return
    if os.environ.get('MLLA_MM_NO_COMPAT') == '1':  # escape hatch for debugging
        return
    allow_mmengine_checkpoint_types()
    patch_init_dist_for_cpu()
    patch_ddp_for_cpu()
    patch_syncbn_for_cpu()
    patch_atomic_local_writes()
    _APPLIED = True


apply()

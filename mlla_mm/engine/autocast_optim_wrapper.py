"""Mixed precision by autocast alone, on whatever device the model is on -- CPU included.

mmengine's ``AmpOptimWrapper`` refuses to start without a GPU/NPU/MLU/MUSA
("AmpOptimizerWrapper is only available training on gpu, npu, mlu or musa") and always
scales the loss, which float16 needs and bfloat16 does not (it has float32's exponent
range). ``tools/train.py --amp`` uses this wrapper when there is no GPU.
"""
from contextlib import contextmanager
from typing import Union

import torch
from mmengine.optim import OptimWrapper
from torch import nn

from ..registry import register_optim_wrapper


def _device_type(model: nn.Module) -> str:
    param = next(model.parameters(), None)
    return param.device.type if param is not None else 'cpu'


@register_optim_wrapper()
class AutocastOptimWrapper(OptimWrapper):
    """Run the forward pass and the loss under ``torch.autocast`` in ``dtype``.

    Parameters, gradients and the optimizer step stay in float32; there is no loss
    scaling. Everything else (gradient clipping, accumulation) is ``OptimWrapper``'s.

    Args:
        dtype: autocast dtype, ``'bfloat16'`` (default) or a ``torch.dtype``. float16
            is refused: without loss scaling its gradients underflow -- use mmengine's
            ``AmpOptimWrapper`` on a GPU for float16.
        **kwargs: ``OptimWrapper``'s (``optimizer``, ``clip_grad``, ``accumulative_counts``).
    """

    def __init__(self, dtype: Union[str, torch.dtype] = 'bfloat16', **kwargs):
        super().__init__(**kwargs)
        if isinstance(dtype, str):
            if not hasattr(torch, dtype) or not isinstance(getattr(torch, dtype), torch.dtype):
                raise ValueError(f'AutocastOptimWrapper: unknown dtype {dtype!r}; use '
                                 "'bfloat16'")
            dtype = getattr(torch, dtype)
        if dtype != torch.bfloat16:
            raise ValueError(f'AutocastOptimWrapper: dtype {dtype} is not supported; it trains '
                             'without loss scaling, which only bfloat16 tolerates (float16 '
                             "needs mmengine's AmpOptimWrapper on a GPU)")
        self.cast_dtype = dtype
        from ..compat import patch_mmcv_ops_for_cpu_autocast
        patch_mmcv_ops_for_cpu_autocast()   # mmcv's CPU nms/RoIAlign have no bfloat16 kernels

    @contextmanager
    def optim_context(self, model: nn.Module):
        with super().optim_context(model), torch.autocast(device_type=_device_type(model),
                                                          dtype=self.cast_dtype):
            yield

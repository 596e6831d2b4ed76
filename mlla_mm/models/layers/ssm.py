"""Mamba's selective-SSM parameterisation, shared by every layer that runs a selective scan.

:class:`~.ss2d.SS2D` (VMamba), :class:`~.bimamba.BiMambaMixer` (Vim) and
:class:`~.unified_attention.UnifiedLinearAttention` (the Demystify mixer) hold the same
parameters around :mod:`mlla_kernels`' scans -- a low-rank step-size projection ``dt_proj``
(weight (…, Di, R), bias (…, Di)), ``A_log`` (…, N) with ``A = -exp(A_log)`` and a skip ``D``
-- and initialise them the same way (Mamba's init, ``mamba_simple.py``). This module is the one
place for that init, the step-size rank rule and the ``kernel_backend`` argument.
"""
import dataclasses
import math
import numbers
from typing import Iterable, Optional, Tuple, Union

import torch
from torch import nn

from mlla_kernels import BACKENDS

#: values of every layer's ``kernel_backend`` argument: 'auto' or one of mlla_kernels' backends
KERNEL_BACKENDS: Tuple[str, ...] = ('auto',) + tuple(BACKENDS)


def check_kernel_backend(backend: str, owner: str) -> str:
    """``backend`` if it names a scan backend, else a ValueError listing the valid names."""
    if backend not in KERNEL_BACKENDS:
        raise ValueError(f'{owner}: kernel_backend must be one of {KERNEL_BACKENDS} '
                         "('auto': Triton on CUDA, numba on CPU when installed, else torch; "
                         f'mlla_kernels.available_backends() lists what runs here), '
                         f'got {backend!r}')
    return backend


def resolve_dt_rank(dt_rank: Union[int, str, None], embed_dims: int, owner: str) -> int:
    """Rank R of the step-size projection: ``None`` or ``'auto'`` give Mamba's
    ``ceil(embed_dims / 16)`` (from the layer's outer width C, not its inner width)."""
    if dt_rank is None or dt_rank == 'auto':
        return math.ceil(embed_dims / 16)
    if isinstance(dt_rank, bool) or not isinstance(dt_rank, numbers.Integral) or dt_rank < 1:
        raise ValueError(f"{owner}: dt_rank must be None, 'auto' or a positive int, "
                         f'got {dt_rank!r}')
    return int(dt_rank)


def inverse_softplus(x: torch.Tensor) -> torch.Tensor:
    """``y`` with ``softplus(y) == x`` (for x > 0)."""
    return x + torch.log(-torch.expm1(-x))


@dataclasses.dataclass(frozen=True)
class SSMInit:
    """Mamba's initialisation of the SSM parameters.

    * ``dt_proj`` weight: uniform in ±``dt_scale / sqrt(R)``;
    * ``dt_proj`` bias: ``softplus(bias)`` (the initial step size Δ) log-uniform in
      [``dt_min``, ``dt_max``], floored at ``dt_init_floor``;
    * ``A_log``: ``log(1, ..., N)`` on every row (S4D-real: A = -(1, ..., N));
    * ``D``: ones.

    Attributes:
        dt_min (float): smallest initial Δ. Default: 1e-3.
        dt_max (float): largest initial Δ. Default: 0.1.
        dt_init_floor (float): lower clamp of the initial Δ. Default: 1e-4.
        dt_scale (float): scale of the dt_proj weight's range. Default: 1.0.
    """

    dt_min: float = 1e-3
    dt_max: float = 0.1
    dt_init_floor: float = 1e-4
    dt_scale: float = 1.0

    def check(self, owner: str) -> 'SSMInit':
        """Itself, or a ValueError naming ``owner`` when the Δ range is empty or not positive."""
        if not 0 < self.dt_min <= self.dt_max:
            raise ValueError(f'{owner}: need 0 < dt_min <= dt_max, got {self.dt_min}, '
                             f'{self.dt_max}')
        return self

    @torch.no_grad()
    def reset_(self,
               dt_projs: Iterable[Tuple[torch.Tensor, torch.Tensor]] = (),
               A_logs: Iterable[torch.Tensor] = (),
               Ds: Iterable[Optional[torch.Tensor]] = ()) -> None:
        """Initialise in place, in this order (the random draws follow it): each
        ``(weight, bias)`` of ``dt_projs`` (weight (…, R), bias the matching (…)), then the
        ``A_logs`` and ``Ds`` (no random draws)."""
        log_min, log_max = math.log(self.dt_min), math.log(self.dt_max)
        for weight, bias in dt_projs:
            bound = weight.shape[-1] ** -0.5 * self.dt_scale
            nn.init.uniform_(weight, -bound, bound)
            dt = torch.exp(torch.rand_like(bias) * (log_max - log_min) + log_min)
            bias.copy_(inverse_softplus(dt.clamp(min=self.dt_init_floor)))
        for a_log in A_logs:
            state = torch.arange(1, a_log.shape[-1] + 1, dtype=torch.float32)
            a_log.copy_(torch.log(state).expand_as(a_log))
        for d in Ds:
            d.fill_(1.0)

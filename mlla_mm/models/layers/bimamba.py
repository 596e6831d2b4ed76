"""Vim's bidirectional Mamba mixer ("bimamba v2") on the kernels' bidirectional scan.

Official computation (hustvl/Vim, ``Mamba(bimamba_type='v2', if_divide_out=True)``), for
tokens ``h`` of shape (B, L, C):

* ``x, z = in_proj(h)`` (shared by both directions);
* forward: ``xf = SiLU(causal dw-conv(x))``; ``[dt | B | C] = x_proj(xf)``;
  ``delta = dt_proj.weight @ dt``; ``yf = scan(xf, delta, -exp(A_log), B, C, D, z, dt_proj.bias)``;
* backward: the same on ``x.flip(L)`` and ``z.flip(L)`` with the ``*_b`` parameters, flipped back;
* ``out = out_proj((yf + yb) / 2)``.

Here nothing is flipped: flipping, a causal conv and flipping back equals an anti-causal
conv with the reversed kernel on the original order; x_proj/dt_proj are per-token maps, so
they run on the original order too; and the kernel scans direction 1 from t = L-1 down to 0
with the shared gate ``z``. Parameter names are the official ones, so checkpoints load as is.
"""
import math
from typing import Union

import torch
import torch.nn.functional as F
from torch import nn

from mlla_kernels import bidirectional_selective_scan

KERNEL_BACKENDS = ('auto', 'naive', 'torch', 'triton')


class BiMambaMixer(nn.Module):
    """Bidirectional (forward + backward) Mamba token mixer of Vim.

    Args:
        embed_dims: token width C (input and output).
        d_state: SSM state size N per channel.
        d_conv: kernel size of the depthwise conv before each scan.
        expand: inner width Di = ``expand * embed_dims``.
        dt_rank: rank R of the low-rank step-size projection; ``'auto'`` gives
            ``ceil(embed_dims / 16)`` as Mamba.
        dt_min, dt_max, dt_init_floor: range of the initial step size
            ``softplus(dt_proj.bias)`` (log-uniform in [dt_min, dt_max], floored).
        conv_bias: whether the depthwise convs have a bias (True in Vim).
        proj_bias: whether in_proj/out_proj have a bias (False in Vim).
        kernel_backend: backend of the scan kernel (``'auto'``, ``'naive'``,
            ``'torch'``, ``'triton'``), see :mod:`mlla_kernels`.
    """

    def __init__(self,
                 embed_dims: int,
                 d_state: int = 16,
                 d_conv: int = 4,
                 expand: Union[int, float] = 2,
                 dt_rank: Union[int, str] = 'auto',
                 dt_min: float = 1e-3,
                 dt_max: float = 0.1,
                 dt_init_floor: float = 1e-4,
                 conv_bias: bool = True,
                 proj_bias: bool = False,
                 kernel_backend: str = 'auto'):
        super().__init__()
        if kernel_backend not in KERNEL_BACKENDS:
            raise ValueError(f'BiMambaMixer: kernel_backend must be one of {KERNEL_BACKENDS}, '
                             f'got {kernel_backend!r}')
        if dt_rank != 'auto' and not (isinstance(dt_rank, int) and dt_rank > 0):
            raise ValueError("BiMambaMixer: dt_rank must be 'auto' or a positive int, "
                             f'got {dt_rank!r}')
        self.embed_dims = embed_dims
        self.d_state = d_state
        self.d_conv = d_conv
        self.d_inner = int(expand * embed_dims)
        self.dt_rank = math.ceil(embed_dims / 16) if dt_rank == 'auto' else dt_rank
        self.kernel_backend = kernel_backend
        di, r, n = self.d_inner, self.dt_rank, self.d_state

        self.in_proj = nn.Linear(embed_dims, 2 * di, bias=proj_bias)
        self.out_proj = nn.Linear(di, embed_dims, bias=proj_bias)
        # One set per direction; the backward set carries the official "_b" suffix.
        for suffix in ('', '_b'):
            setattr(self, f'conv1d{suffix}',
                    nn.Conv1d(di, di, d_conv, groups=di, padding=d_conv - 1, bias=conv_bias))
            setattr(self, f'x_proj{suffix}', nn.Linear(di, r + 2 * n, bias=False))
            setattr(self, f'dt_proj{suffix}', nn.Linear(r, di, bias=True))
        self.A_log = nn.Parameter(torch.empty(di, n))
        self.A_b_log = nn.Parameter(torch.empty(di, n))
        self.D = nn.Parameter(torch.empty(di))
        self.D_b = nn.Parameter(torch.empty(di))
        self.reset_ssm_parameters(dt_min, dt_max, dt_init_floor)

    @torch.no_grad()
    def reset_ssm_parameters(self, dt_min: float = 1e-3, dt_max: float = 0.1,
                             dt_init_floor: float = 1e-4) -> None:
        """Mamba's init: dt_proj uniform(+-R^-0.5), bias = softplus^-1(dt), A = 1..N, D = 1."""
        std = self.dt_rank ** -0.5
        for dt_proj in (self.dt_proj, self.dt_proj_b):
            nn.init.uniform_(dt_proj.weight, -std, std)
            dt = torch.exp(torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min))
                           + math.log(dt_min)).clamp(min=dt_init_floor)
            dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        a_log = torch.log(torch.arange(1, self.d_state + 1, dtype=torch.float32))
        for p in (self.A_log, self.A_b_log):
            p.copy_(a_log.expand(self.d_inner, -1))
        self.D.fill_(1.0)
        self.D_b.fill_(1.0)

    def _conv(self, x: torch.Tensor, conv: nn.Conv1d, backward: bool) -> torch.Tensor:
        """Depthwise conv: causal (sees t-k+1..t) or anti-causal (sees t..t+k-1)."""
        k = self.d_conv
        if backward:
            # flip -> causal conv -> flip  ==  anti-causal conv with the reversed kernel
            return F.conv1d(F.pad(x, (0, k - 1)), conv.weight.flip(-1), conv.bias,
                            groups=self.d_inner)
        return F.conv1d(F.pad(x, (k - 1, 0)), conv.weight, conv.bias, groups=self.d_inner)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, L, C) -> (B, L, C)."""
        if hidden.dim() != 3 or hidden.shape[-1] != self.embed_dims:
            raise ValueError(f'BiMambaMixer: expected (batch, length, {self.embed_dims}) tokens, '
                             f'got shape {tuple(hidden.shape)}')
        r, n = self.dt_rank, self.d_state
        xz = self.in_proj(hidden).transpose(1, 2)             # (B, 2Di, L)
        x, z = xz[:, :self.d_inner], xz[:, self.d_inner:]
        us, deltas, Bs, Cs = [], [], [], []
        for conv, x_proj, dt_proj, backward in (
                (self.conv1d, self.x_proj, self.dt_proj, False),
                (self.conv1d_b, self.x_proj_b, self.dt_proj_b, True)):
            u = F.silu(self._conv(x, conv, backward))         # (B, Di, L)
            dt, B, C = x_proj(u.transpose(1, 2)).split([r, n, n], dim=-1)
            us.append(u)
            deltas.append(F.linear(dt, dt_proj.weight).transpose(1, 2))  # bias goes to the scan
            Bs.append(B.transpose(1, 2))
            Cs.append(C.transpose(1, 2))
        y = bidirectional_selective_scan(
            torch.stack(us, 1), torch.stack(deltas, 1),
            -torch.exp(torch.stack([self.A_log, self.A_b_log]).float()),
            torch.stack(Bs, 1), torch.stack(Cs, 1),
            D=torch.stack([self.D, self.D_b]).float(), z=z,
            delta_bias=torch.stack([self.dt_proj.bias, self.dt_proj_b.bias]).float(),
            delta_softplus=True, backend=self.kernel_backend)  # (B, Di, L) = yf + yb
        return self.out_proj(y.transpose(1, 2) / 2)

    def extra_repr(self) -> str:
        return (f'embed_dims={self.embed_dims}, d_inner={self.d_inner}, d_state={self.d_state}, '
                f'dt_rank={self.dt_rank}, d_conv={self.d_conv}, '
                f'kernel_backend={self.kernel_backend!r}')

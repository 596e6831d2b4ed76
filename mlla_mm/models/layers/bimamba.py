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
from typing import Optional, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn

from mlla_kernels import bidirectional_selective_scan, depthwise_conv2d, dispatch

from .common import recompute_in_backward
from .linear import Linear, linear
from .ssm import SSMInit, check_kernel_backend, resolve_dt_rank


class BiMambaMixer(BaseModule):
    """Bidirectional (forward + backward) Mamba token mixer of Vim.

    Args:
        embed_dims: token width C (input and output).
        d_state: SSM state size N per channel.
        d_conv: kernel size of the depthwise conv before each scan.
        expand: inner width Di = ``expand * embed_dims``.
        dt_rank: rank R of the low-rank step-size projection; ``'auto'`` (or None) gives
            ``ceil(embed_dims / 16)`` as Mamba.
        dt_min, dt_max, dt_init_floor: range of the initial step size
            ``softplus(dt_proj.bias)`` (log-uniform in [dt_min, dt_max], floored).
        conv_bias: whether the depthwise convs have a bias (True in Vim).
        proj_bias: whether in_proj/out_proj have a bias (False in Vim).
        kernel_backend: backend of the scan kernel (``'auto'``, ``'naive'``,
            ``'torch'``, ``'numba'``, ``'triton'``), see :mod:`mlla_kernels`.
        init_cfg: mmengine init config.
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
                 kernel_backend: str = 'auto',
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.kernel_backend = check_kernel_backend(kernel_backend, 'BiMambaMixer')
        self.ssm_init = SSMInit(dt_min, dt_max, dt_init_floor).check('BiMambaMixer')
        self.embed_dims = embed_dims
        self.d_state = d_state
        self.d_conv = d_conv
        self.d_inner = int(expand * embed_dims)
        self.dt_rank = resolve_dt_rank(dt_rank, embed_dims, 'BiMambaMixer')
        di, r, n = self.d_inner, self.dt_rank, self.d_state

        self.in_proj = Linear(embed_dims, 2 * di, bias=proj_bias)
        self.out_proj = Linear(di, embed_dims, bias=proj_bias)
        # One set per direction; the backward set carries the official "_b" suffix.
        for suffix in ('', '_b'):
            setattr(self, f'conv1d{suffix}',
                    nn.Conv1d(di, di, d_conv, groups=di, padding=d_conv - 1, bias=conv_bias))
            setattr(self, f'x_proj{suffix}', Linear(di, r + 2 * n, bias=False))
            setattr(self, f'dt_proj{suffix}', Linear(r, di, bias=True))
        self.A_log = nn.Parameter(torch.empty(di, n))
        self.A_b_log = nn.Parameter(torch.empty(di, n))
        self.D = nn.Parameter(torch.empty(di))
        self.D_b = nn.Parameter(torch.empty(di))
        self.reset_ssm_parameters()

    def reset_ssm_parameters(self) -> None:
        """Mamba's init of Δ, A and D (:class:`~.ssm.SSMInit`), forward direction first."""
        self.ssm_init.reset_(
            dt_projs=[(p.weight, p.bias) for p in (self.dt_proj, self.dt_proj_b)],
            A_logs=[self.A_log, self.A_b_log], Ds=[self.D, self.D_b])

    def _conv(self, x: torch.Tensor, conv: nn.Conv1d, backward: bool) -> torch.Tensor:
        """Depthwise conv along the tokens of x (B, L, Di), in that layout.

        Causal (sees t-k+1..t) for the forward direction; anti-causal (sees t..t+k-1) with
        the reversed kernel for the backward one (= flip, causal conv, flip back). The map
        is handed to the conv as a (B, Di, 1, L) channels-last view of x itself, so neither
        input nor output is transposed; the result is a (B, L, Di) view.
        """
        k = self.d_conv
        weight = conv.weight.flip(-1) if backward else conv.weight
        out = F.conv2d(x.transpose(1, 2).unsqueeze(2), weight.unsqueeze(2), conv.bias,
                       padding=(0, k - 1), groups=self.d_inner)       # (B, Di, 1, L+k-1)
        length = x.shape[1]
        out = out[..., k - 1:] if backward else out[..., :length]
        return out.squeeze(2).transpose(1, 2)

    def _conv_silu(self, x: torch.Tensor, backward: bool) -> torch.Tensor:
        return F.silu(self._conv(x, self.conv1d_b if backward else self.conv1d, backward))

    def _fused_conv_silu(self, x: torch.Tensor) -> torch.Tensor:
        """Both directions' conv + SiLU as one fused CPU kernel call, (B, L, Di) ->
        (B, 2, L, Di): x read as a 1 x L channels-last map by two kernels, the causal one
        and the reversed anti-causal one; it keeps only x for its (recomputing) backward."""
        k = self.d_conv
        weight = torch.stack([self.conv1d.weight[:, 0], self.conv1d_b.weight[:, 0].flip(-1)])
        bias = self.conv1d.bias
        if bias is not None:
            bias = torch.stack([bias, self.conv1d_b.bias])
        out = depthwise_conv2d(x.unsqueeze(1), weight.unsqueeze(2), bias,
                               padding=((0, k - 1), (0, 0)), activation='silu',
                               backend='numba')                  # (B, 2, 1, L, Di)
        return out.squeeze(2)

    def _conv_runs_numba(self, x: torch.Tensor) -> bool:
        """Whether this call's backend is the fused CPU kernels (else: PyTorch's conv under
        :func:`recompute_in_backward`, on a GPU, when traced or compiled)."""
        if torch.jit.is_tracing() or torch.compiler.is_compiling():
            return False   # decided before resolving a backend, which imports modules
        name = dispatch.resolve_backend(dispatch.request(self.kernel_backend).name, x.device,
                                        x.dtype)
        return dispatch.backend_for('depthwise_conv2d', name) == 'numba'

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, L, C) -> (B, L, C).

        Everything stays in token layout (B, [2,] L, Di), channels innermost: the two
        directions are stacked once, their x_proj/dt_proj run as one batched GEMM each, and
        the fused CPU kernel reads u, delta, B, C and z as (…, Di, L) views of that memory.
        """
        if hidden.dim() != 3 or hidden.shape[-1] != self.embed_dims:
            raise ValueError(f'BiMambaMixer: expected (batch, length, {self.embed_dims}) tokens, '
                             f'got shape {tuple(hidden.shape)}')
        r, n, di = self.dt_rank, self.d_state, self.d_inner
        weight, bias = self.in_proj.weight, self.in_proj.bias
        # x and z as two GEMMs: each comes out contiguous (no strided half of one output)
        x = linear(hidden, weight[:di], None if bias is None else bias[:di])
        z = linear(hidden, weight[di:], None if bias is None else bias[di:])
        if self._conv_runs_numba(x):
            u = self._fused_conv_silu(x)                                     # (B, 2, L, Di)
        else:
            u = torch.stack([recompute_in_backward(self._conv_silu, x, backward)
                             for backward in (False, True)], 1)             # (B, 2, L, Di)
        x_dbl = torch.matmul(u, torch.stack([self.x_proj.weight, self.x_proj_b.weight])
                             .transpose(1, 2))                              # (B, 2, L, R+2N)
        dt, B, C = x_dbl.split([r, n, n], dim=-1)
        delta = torch.matmul(dt, torch.stack([self.dt_proj.weight, self.dt_proj_b.weight])
                             .transpose(1, 2))                              # (B, 2, L, Di)
        y = bidirectional_selective_scan(
            u.transpose(2, 3), delta.transpose(2, 3),
            -torch.exp(torch.stack([self.A_log, self.A_b_log]).float()),
            B.transpose(2, 3), C.transpose(2, 3),
            D=torch.stack([self.D, self.D_b]).float(), z=z.transpose(1, 2),
            delta_bias=torch.stack([self.dt_proj.bias, self.dt_proj_b.bias]).float(),
            delta_softplus=True, backend=self.kernel_backend)  # (B, Di, L) = yf + yb
        return self.out_proj(y.transpose(1, 2) / 2)

    def extra_repr(self) -> str:
        return (f'embed_dims={self.embed_dims}, d_inner={self.d_inner}, d_state={self.d_state}, '
                f'dt_rank={self.dt_rank}, d_conv={self.d_conv}, '
                f'kernel_backend={self.kernel_backend!r}')

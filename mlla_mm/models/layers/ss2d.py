"""VMamba's SS2D token mixer (the v2 release, "v05_noz") on the cross-scan kernel.

Channel-first throughout: every tensor is NCHW. The 2D selective scan itself
(routes, scan, merge) lives in :func:`mlla_kernels.cross_scan_selective_scan`;
this module only holds the parameters and the per-pixel projections around it.
"""
from typing import Optional, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn

from mlla_kernels import cross_scan_selective_scan

from .common import LayerNorm2d, recompute_in_backward
from .linear import linear
# KERNEL_BACKENDS and inverse_softplus are re-exported for code written against this module.
from .ssm import (KERNEL_BACKENDS, RouteSSMParameters, SSMInit,  # noqa: F401
                  check_kernel_backend, inverse_softplus, resolve_dt_rank)


class Linear2d(nn.Linear):
    """A linear map over the channels of an NCHW map (a 1×1 conv without the conv's init).

    The weight is stored 2-D ``(out, in)`` like ``nn.Linear`` -- the layout of
    VMamba's checkpoints -- and a ``(out, in, 1, 1)`` conv weight from a
    checkpoint is accepted too.
    """

    @staticmethod
    def is_channels_last(x: torch.Tensor) -> bool:
        """Whether the NCHW map ``x`` lies channels-last in memory (a GEMM over its pixels)."""
        return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.is_channels_last(x):
            # channels-last memory: a plain GEMM over the pixels, output channels-last too
            return linear(x.permute(0, 2, 3, 1), self.weight, self.bias).permute(0, 3, 1, 2)
        return F.conv2d(x, self.weight[:, :, None, None], self.bias)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs):
        key = prefix + 'weight'
        weight = state_dict.get(key)
        if weight is not None and weight.dim() == 4 and weight.shape[2:] == (1, 1):
            state_dict[key] = weight.flatten(1)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                      missing_keys, unexpected_keys, error_msgs)


class SS2D(RouteSSMParameters, BaseModule):
    """2D selective scan (SS2D) of VMamba v2, without the gate branch.

    ``x -> in_proj -> dwconv3x3 -> SiLU -> cross-scan SSM over `directions`
    routes -> out_norm -> out_proj``, all channel-first. Parameter names and
    shapes are those of the official checkpoints (``in_proj.weight`` (Di, C),
    ``conv2d.weight`` (Di, 1, k, k), ``x_proj_weight`` (K, R+2N, Di),
    ``dt_projs_weight`` (K, Di, R), ``dt_projs_bias`` (K, Di), ``A_logs``
    (K·Di, N), ``Ds`` (K·Di), ``out_norm.*`` (Di), ``out_proj.weight`` (C, Di)).

    Args:
        embed_dims (int): input/output channels C.
        d_state (int): SSM state size N per channel. Default: 1 (VMamba v2).
        ssm_ratio (float): inner width Di = int(ssm_ratio * C). Default: 2.0.
        dt_rank (int | str, optional): rank R of the Δ projection; None or 'auto'
            give ceil(C / 16), computed from C (not Di) as upstream does.
        conv_kernel (int): kernel size of the depthwise conv (no bias). Default: 3.
        directions (int): number of scan routes K: 4 (row-major, column-major
            and both reversed; VMamba v2), 2 (row-major both ways) or 1.
        dt_min (float): smallest Δ of the initial bias range. Default: 0.001.
        dt_max (float): largest Δ of the initial bias range. Default: 0.1.
        dt_init_floor (float): lower clamp of the initial Δ. Default: 1e-4.
        dt_scale (float): scale of the uniform init of ``dt_projs_weight``
            (±dt_scale / sqrt(R)). Default: 1.0.
        kernel_backend (str): backend of the scan kernel: 'auto' (Triton on
            CUDA, numba on CPU when installed, else PyTorch), 'numba', 'torch',
            'triton' or 'naive'.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 embed_dims: int,
                 d_state: int = 1,
                 ssm_ratio: float = 2.0,
                 dt_rank: Union[int, str, None] = None,
                 conv_kernel: int = 3,
                 directions: int = 4,
                 dt_min: float = 0.001,
                 dt_max: float = 0.1,
                 dt_init_floor: float = 1e-4,
                 dt_scale: float = 1.0,
                 kernel_backend: str = 'auto',
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if directions not in (1, 2, 4):
            raise ValueError(f'SS2D: directions must be 1, 2 or 4, got {directions}')
        if conv_kernel < 1 or conv_kernel % 2 == 0:
            raise ValueError(f'SS2D: conv_kernel must be a positive odd number (the map '
                             f'keeps its size), got {conv_kernel}')
        self.kernel_backend = check_kernel_backend(kernel_backend, 'SS2D')
        self.ssm_init = SSMInit(dt_min, dt_max, dt_init_floor, dt_scale).check('SS2D')
        self.embed_dims = embed_dims
        self.d_state = d_state
        self.d_inner = int(ssm_ratio * embed_dims)
        if self.d_inner < 1:
            raise ValueError(f'SS2D: ssm_ratio {ssm_ratio} gives no inner channels '
                             f'for {embed_dims} input channels')
        self.dt_rank = resolve_dt_rank(dt_rank, embed_dims, 'SS2D')
        self.directions = directions
        k, d, r, n = directions, self.d_inner, self.dt_rank, d_state

        self.in_proj = Linear2d(embed_dims, d, bias=False)
        self.conv2d = nn.Conv2d(d, d, conv_kernel, padding=conv_kernel // 2, groups=d,
                                bias=False)
        self.act = nn.SiLU()
        # Per route k: [Δ_raw (R) | B (N) | C (N)] = x_proj_weight[k] @ u.
        self._add_route_ssm_parameters(k, d, r, n)
        self.out_norm = LayerNorm2d(d)
        self.out_proj = Linear2d(d, embed_dims, bias=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """VMamba's ``ssm_init='v0'``: projections as upstream, then Mamba's SSM init."""
        # VMamba's trunc_normal_(std=0.02) truncates at +-2 (100 std): a plain normal.
        nn.init.normal_(self.in_proj.weight, std=0.02)
        nn.init.normal_(self.out_proj.weight, std=0.02)
        self.conv2d.reset_parameters()
        # x_proj keeps nn.Linear's default init, U(±1/sqrt(Di)); then Mamba's SSM init.
        self._reset_route_ssm_parameters()
        self.out_norm.reset_parameters()

    def _conv_act(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2d(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W), in x's memory format.

        With a channels-last x (how :class:`VMamba` runs it) every tensor of the scan is a
        view with the channels innermost: the projections are GEMMs over pixels, and the
        fused CPU kernel reads u, delta, B and C where they lie and writes y in the same
        layout -- no routed, transposed or contiguous copy is made for the scan.
        """
        batch, _, height, width = x.shape
        k, r, n = self.directions, self.dt_rank, self.d_state
        # conv + SiLU are recomputed in backward (cheap) instead of keeping the conv output
        u = recompute_in_backward(self._conv_act, self.in_proj(x))      # (B, Di, H, W)
        # x_proj and dt_proj act per pixel: one GEMM each over (pixels, channels),
        # computed once in pixel layout; the kernel reads them along each route.
        pixels = u.permute(0, 2, 3, 1).reshape(batch, height * width, self.d_inner)
        x_dbl = linear(pixels, self.x_proj_weight.to(u.dtype).flatten(0, 1))
        x_dbl = x_dbl.view(batch, height * width, k, r + 2 * n)          # (B, L, K, R+2N)
        dt_raw, B, C = torch.split(x_dbl.transpose(1, 2), [r, n, n], dim=3)  # (B, K, L, *)
        delta = torch.einsum('bklr,kdr->bkld', dt_raw, self.dt_projs_weight.to(u.dtype))

        def as_maps(t):  # (B, K, L, c) views -> (B, K, c, H, W) views
            return t.transpose(2, 3).unflatten(3, (height, width))

        y = cross_scan_selective_scan(
            u, as_maps(delta), -torch.exp(self.A_logs.float()), as_maps(B), as_maps(C),
            D=self.Ds.float(), delta_bias=self.dt_projs_bias.flatten().float(),
            delta_softplus=True, directions=k, backend=self.kernel_backend)
        # Upstream normalises the scan output in fp32 and casts back afterwards.
        y = self.out_norm(y.float()).to(x.dtype)
        return self.out_proj(y)

    def extra_repr(self) -> str:
        return (f'embed_dims={self.embed_dims}, d_inner={self.d_inner}, '
                f'd_state={self.d_state}, dt_rank={self.dt_rank}, '
                f'directions={self.directions}, kernel_backend={self.kernel_backend!r}')

"""MHS-VM's Multi-Head Scan (MHS) token mixer on the routed scan kernel.

`MHS-VM: Multi-Head Scanning in Parallel Subspaces for Vision Mamba
<https://arxiv.org/abs/2406.05992>`_ (code: PixDeep/MHS-VM, ``models/vmunet/mhsm.py``).
The map is projected into ``h`` subspaces of ``s = C // h`` channels (``x_ssproj``); each
subspace is one *scan head* that runs a selective scan (N = 16) along its own pair of
routes a, b and their reverses -- ``[a, a~, b, b~]`` -- and weighs the four per-route
outputs by their agreement (Scan Route Attention); the heads' outputs are concatenated,
layer-normed (``cat_norm``) and projected back to C channels (``y_proj``).

The routes are data (:mod:`mlla_kernels.route_tables`), built for any H x W and cached,
so every input size works. The scan runs through
:func:`mlla_kernels.routed_selective_scan` with ``merge=False`` (per-route outputs in
pixel order), on every kernel backend. Parameter names are upstream's, so the official
files load unchanged (see :class:`mlla_mm.models.backbones.vmunet.VMUNet`).

:class:`MHSGatedMixer` is the token mixer of MHS-VM's blocks (``in_proj`` -> depthwise conv
-> SiLU -> MHS -> ``out_norm``, gated by SiLU(z)); VM-UNet + MHS and the VMamba-style
backbone :class:`mlla_mm.models.backbones.MHSVMamba` both use it.
"""
import math
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn

from mlla_kernels import Route, routed_selective_scan

from .ss2d import KERNEL_BACKENDS, inverse_softplus

#: The head families of MHS-VM in upstream's order, each with its pair of routes
#: (``scanutils.py``/``routegen.py``): C = snakes, X = diagonal zigzags, S = spirals,
#: Z = rasters. A head scans ``[a, a~, b, b~]``.
HEAD_ROUTES: Dict[str, Tuple[str, str]] = {
    'C': ('snake_row', 'snake_col'),
    'X': ('zigzag', 'zigzag_mirror'),
    'S': ('spiral', 'spiral_flip'),
    'Z': ('row', 'col'),
}


def head_routes(head: str) -> Tuple[Route, ...]:
    """The four routes of head family ``head``: ``(a, a~, b, b~)``."""
    a, b = HEAD_ROUTES[head]
    return (Route(a), Route(a, True), Route(b), Route(b, True))


def resolve_heads(heads: Union[int, Sequence[str]], owner: str = 'MHS') -> Tuple[str, ...]:
    """``heads`` as a tuple of head names: an int n takes the first n of C, X, S, Z
    (upstream's ``head_num`` 3 = C, X, S; 4 = C, X, S, Z); a sequence names them."""
    names = tuple(HEAD_ROUTES)
    if isinstance(heads, int) and not isinstance(heads, bool):
        if not 1 <= heads <= len(names):
            raise ValueError(f'{owner}: heads={heads}; an int takes the first n of '
                             f'{names} (upstream uses 3 or 4), so 1 <= n <= {len(names)}')
        return names[:heads]
    if isinstance(heads, str) or not all(isinstance(h, str) for h in heads):
        raise TypeError(f'{owner}: heads must be an int or a sequence of head names from '
                        f'{names}, e.g. ("C", "X", "S"); got {heads!r}')
    heads = tuple(heads)
    unknown = [h for h in heads if h not in HEAD_ROUTES]
    if unknown or not heads or len(set(heads)) != len(heads):
        raise ValueError(f'{owner}: heads {heads!r} must be distinct names from {names}')
    return heads


class RouteSSM(nn.Module):
    """One selective-scan state-space model per route (upstream's ``MambaEngine``).

    Route k reads the map u, computes ``[dt (R) | B (N) | C (N)] = x_proj_weight[k] @ u`` at
    every pixel, maps dt to Δ with ``dt_projs_weight[k]`` (+ ``dt_projs_bias[k]``, softplus)
    and scans with ``A = -exp(A_logs)`` and skip ``Ds``; no gate, no conv, no expansion
    (d_inner = C). Parameters: ``x_proj_weight`` (K, R+2N, C), ``dt_projs_weight`` (K, C, R),
    ``dt_projs_bias`` (K, C), ``A_logs`` (K·C, N), ``Ds`` (K·C), with Mamba's init.

    Args:
        embed_dims (int): channels C of the map (upstream: the subspace width s).
        num_routes (int): routes K. Default: 4.
        d_state (int): state size N. Default: 16.
        dt_rank (int, optional): rank R of Δ's projection; None gives ceil(C / 16).
        dt_min, dt_max (float): range of the initial Δ (log-uniform). Default: 1e-3, 0.1.
        dt_init_floor (float): lower clamp of the initial Δ. Default: 1e-4.
        dt_scale (float): ``dt_projs_weight`` starts U(±dt_scale / sqrt(R)). Default: 1.0.
    """

    def __init__(self, embed_dims: int, num_routes: int = 4, d_state: int = 16,
                 dt_rank: Optional[int] = None, dt_min: float = 0.001, dt_max: float = 0.1,
                 dt_init_floor: float = 1e-4, dt_scale: float = 1.0):
        super().__init__()
        if not 0 < dt_min <= dt_max:
            raise ValueError(f'RouteSSM: need 0 < dt_min <= dt_max, got {dt_min}, {dt_max}')
        self.embed_dims = embed_dims
        self.num_routes = num_routes
        self.d_state = d_state
        self.dt_rank = math.ceil(embed_dims / 16) if dt_rank is None else int(dt_rank)
        k, d, r, n = num_routes, embed_dims, self.dt_rank, d_state
        self.x_proj_weight = nn.Parameter(torch.empty(k, r + 2 * n, d))
        self.dt_projs_weight = nn.Parameter(torch.empty(k, d, r))
        self.dt_projs_bias = nn.Parameter(torch.empty(k, d))
        self.A_logs = nn.Parameter(torch.empty(k * d, n))
        self.Ds = nn.Parameter(torch.empty(k * d))
        self._dt_init = (dt_min, dt_max, dt_init_floor, dt_scale)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Mamba's init, one copy per route (as upstream's ``MambaEngine``)."""
        dt_min, dt_max, dt_floor, dt_scale = self._dt_init
        # x_proj is built from nn.Linear upstream: U(±1/sqrt(C))
        bound = 1 / math.sqrt(self.embed_dims)
        nn.init.uniform_(self.x_proj_weight, -bound, bound)
        std = self.dt_rank ** -0.5 * dt_scale
        nn.init.uniform_(self.dt_projs_weight, -std, std)
        # softplus(bias) log-uniform in [dt_min, dt_max]
        dt = torch.exp(torch.rand_like(self.dt_projs_bias)
                       * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        self.dt_projs_bias.copy_(inverse_softplus(dt.clamp(min=dt_floor)))
        # S4D-real: A = -(1, 2, ..., N) for every channel
        self.A_logs.copy_(torch.log(torch.arange(1, self.d_state + 1, dtype=torch.float32))
                          .expand_as(self.A_logs))
        self.Ds.fill_(1.0)

    def forward(self, x: torch.Tensor, routes: Sequence[Route],
                kernel_backend: str = 'auto') -> torch.Tensor:
        """(B, C, H, W) -> (B, K, C, H, W): route k's output at each pixel (not summed)."""
        batch, dims, height, width = x.shape
        k, r, n = self.num_routes, self.dt_rank, self.d_state
        if len(routes) != k:
            raise ValueError(f'RouteSSM has parameters for {k} routes, got {len(routes)}')
        # The projections act per pixel: computed once in pixel layout; the kernel reads
        # them along each route.
        pixels = x.permute(0, 2, 3, 1).reshape(batch, height * width, dims)
        x_dbl = F.linear(pixels, self.x_proj_weight.to(x.dtype).flatten(0, 1))
        x_dbl = x_dbl.view(batch, height * width, k, r + 2 * n).transpose(1, 2)  # (B, K, L, *)
        dt_raw, B, C = torch.split(x_dbl, [r, n, n], dim=3)
        delta = torch.einsum('bklr,kdr->bkld', dt_raw, self.dt_projs_weight.to(x.dtype))

        def as_maps(t):  # (B, K, L, c) -> (B, K, c, H, W)
            return t.transpose(2, 3).unflatten(3, (height, width))

        # the SSM parameters in float32 (float64 for float64 inputs), as upstream's scan
        ssm = torch.float64 if x.dtype == torch.float64 else torch.float32
        return routed_selective_scan(
            x, as_maps(delta), -torch.exp(self.A_logs.to(ssm)), as_maps(B), as_maps(C),
            D=self.Ds.to(ssm), delta_bias=self.dt_projs_bias.flatten().to(ssm),
            delta_softplus=True, routes=routes, merge=False, backend=kernel_backend)

    def extra_repr(self) -> str:
        return (f'embed_dims={self.embed_dims}, num_routes={self.num_routes}, '
                f'd_state={self.d_state}, dt_rank={self.dt_rank}')


def scan_route_attention(ys: torch.Tensor, threshold: float) -> torch.Tensor:
    """Scan Route Attention (upstream's ``GFU``): (B, K, ...) -> (B, ...).

    The K route outputs are summed and weighted, element by element, by how much they
    disagree: ``sum_k y_k * ReLU(cv - threshold)`` with the relative coefficient of variation
    ``cv = std_k(y) / (mean_k(y - min_k y) + 1e-5)`` (unbiased std).
    """
    spread = (ys - ys.min(dim=1, keepdim=True).values).mean(dim=1)
    cv = ys.std(dim=1) / (spread + 1e-5)
    return ys.sum(dim=1) * F.relu(cv - threshold)


class ScanHead(nn.Module):
    """One head of MHS: a :class:`RouteSSM` (``mambaeng``) over the head's four routes,
    then Scan Route Attention. (B, s, H, W) -> (B, s, H, W).

    Args:
        embed_dims (int): the subspace width s.
        head (str): the head family: 'C', 'X', 'S' or 'Z' (:data:`HEAD_ROUTES`).
        sra_threshold (float): the threshold t of Scan Route Attention.
        kernel_backend (str): backend of the routed scan kernel.
        **ssm_kwargs: arguments of :class:`RouteSSM` (d_state, dt_rank, ...).
    """

    def __init__(self, embed_dims: int, head: str, sra_threshold: float = 0.0,
                 kernel_backend: str = 'auto', **ssm_kwargs):
        super().__init__()
        self.head = head
        self.routes = head_routes(head)
        self.sra_threshold = float(sra_threshold)
        self.kernel_backend = kernel_backend
        self.mambaeng = RouteSSM(embed_dims, num_routes=len(self.routes), **ssm_kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ys = self.mambaeng(x, self.routes, self.kernel_backend)
        return scan_route_attention(ys, self.sra_threshold)

    def extra_repr(self) -> str:
        return (f'head={self.head!r}, routes={", ".join(map(str, self.routes))}, '
                f'sra_threshold={self.sra_threshold}')


class MHS(BaseModule):
    """Multi-Head Scan module (upstream's ``MHSM``): NCHW in, NCHW out.

    ``x -> x_ssproj (C -> h·s) -> split into heads -> ScanHead each -> concat
    -> cat_norm (LayerNorm h·s) -> y_proj (h·s -> C)``, with s = C // h. Parameter names as
    upstream: ``x_ssproj.weight`` (h·s, C), ``scanhead_{C,X,S,Z}.mambaeng.{x_proj_weight,
    dt_projs_weight, dt_projs_bias, A_logs, Ds}``, ``cat_norm.*`` (h·s), ``y_proj.weight``
    (C, h·s).

    Args:
        embed_dims (int): channels C.
        heads (int | Sequence[str]): the scan heads: 3 (C, X, S), 4 (C, X, S, Z; the released
            ``best_4h.pth``), any n <= 4 for the first n, or names such as ``('C', 'Z')``.
            Default: 4.
        sra_threshold (float): t of Scan Route Attention, ``ReLU(cv - t)``. Upstream trains
            with 0.5 (ISIC 2018) or 0.0 (ISIC 2017) and its ``test.py`` evaluates with 0.4
            whatever the training value. It has no parameter: it can be changed at test time
            (``--cfg-options``). Default: 0.0.
        d_state (int): state size N of every route. Default: 16.
        dt_rank (int, optional): rank of Δ's projection; None gives ceil(s / 16).
        with_proj (bool): apply ``cat_norm`` and ``y_proj`` (upstream's configs: True);
            without them h·s must equal C. Default: True.
        kernel_backend (str): backend of the routed scan: 'auto' (Triton on CUDA, numba on
            CPU when installed, else PyTorch), 'numba', 'torch', 'triton' or 'naive'.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 embed_dims: int,
                 heads: Union[int, Sequence[str]] = 4,
                 sra_threshold: float = 0.0,
                 d_state: int = 16,
                 dt_rank: Optional[int] = None,
                 with_proj: bool = True,
                 kernel_backend: str = 'auto',
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if kernel_backend not in KERNEL_BACKENDS:
            raise ValueError(f'MHS: kernel_backend must be one of {KERNEL_BACKENDS}, '
                             f'got {kernel_backend!r}')
        self.heads = resolve_heads(heads)
        self.embed_dims = embed_dims
        self.dim_sub = embed_dims // len(self.heads)
        if self.dim_sub < 1:
            raise ValueError(f'MHS: {embed_dims} channels cannot be split into '
                             f'{len(self.heads)} heads')
        inner = self.dim_sub * len(self.heads)
        if not with_proj and inner != embed_dims:
            raise ValueError(f'MHS: with_proj=False needs embed_dims ({embed_dims}) divisible '
                             f'by the number of heads ({len(self.heads)})')
        self.with_proj = with_proj
        self.x_ssproj = nn.Linear(embed_dims, inner, bias=False)
        for head in self.heads:
            self.add_module(f'scanhead_{head}', ScanHead(
                self.dim_sub, head, sra_threshold=sra_threshold, kernel_backend=kernel_backend,
                d_state=d_state, dt_rank=dt_rank))
        if with_proj:
            self.cat_norm = nn.LayerNorm(inner)
            self.y_proj = nn.Linear(inner, embed_dims, bias=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Upstream's VSSM init for the linear maps (N(0, 0.02); the cut at ±2 of its
        trunc_normal_ is 100 std away), unit LayerNorm; the SSMs keep Mamba's init."""
        nn.init.normal_(self.x_ssproj.weight, std=0.02)
        if self.with_proj:
            nn.init.normal_(self.y_proj.weight, std=0.02)
            self.cat_norm.reset_parameters()

    @property
    def sra_threshold(self) -> float:
        return self.scan_heads()[0].sra_threshold

    @sra_threshold.setter
    def sra_threshold(self, value: float) -> None:
        for head in self.scan_heads():
            head.sra_threshold = float(value)

    def scan_heads(self) -> Tuple[ScanHead, ...]:
        return tuple(getattr(self, f'scanhead_{h}') for h in self.heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        # per-pixel projections as GEMMs over (pixels, channels), channels innermost
        subspaces = F.linear(x.permute(0, 2, 3, 1), self.x_ssproj.weight)   # (B, H, W, h·s)
        outs = [head(sub.permute(0, 3, 1, 2)) for head, sub in
                zip(self.scan_heads(), subspaces.split(self.dim_sub, dim=3))]
        y = torch.cat(outs, dim=1).permute(0, 2, 3, 1)                      # (B, H, W, h·s)
        if self.with_proj:
            y = self.y_proj(self.cat_norm(y))
        return y.permute(0, 3, 1, 2)                                         # channels-last memory

    def extra_repr(self) -> str:
        return (f'embed_dims={self.embed_dims}, heads={"".join(self.heads)}, '
                f'dim_sub={self.dim_sub}, with_proj={self.with_proj}')


class MHSGatedMixer(BaseModule):
    """The gated token mixer around MHS (upstream's ``VSSGate``), ``(B, H, W, C)`` in and out::

        x, z = split(in_proj(x))                       # C -> 2C, no bias
        y = out_norm(MHS(SiLU(dwconv3x3(x))))          # conv with bias; d_inner = C
        out = y * SiLU(z)

    Keys ``in_proj``, ``conv2d``, ``mhs.*``, ``out_norm``; no output projection (MHS's
    ``y_proj`` plays that role).

    Args:
        embed_dims (int): channels C.
        conv_kernel (int): depthwise conv kernel. Default: 3.
        dropout (float): dropout on the output (upstream's ``attn_drop_rate``). Default: 0.
        **mhs_kwargs: arguments of :class:`MHS` (heads, sra_threshold, ...).
    """

    def __init__(self, embed_dims: int, conv_kernel: int = 3, dropout: float = 0.0,
                 **mhs_kwargs):
        super().__init__()
        self.in_proj = nn.Linear(embed_dims, 2 * embed_dims, bias=False)
        self.conv2d = nn.Conv2d(embed_dims, embed_dims, conv_kernel, padding=conv_kernel // 2,
                                groups=embed_dims, bias=True)
        self.act = nn.SiLU()
        self.mhs = MHS(embed_dims, **mhs_kwargs)
        self.out_norm = nn.LayerNorm(embed_dims)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, z = self.in_proj(x).chunk(2, dim=-1)
        x = self.act(self.conv2d(x.permute(0, 3, 1, 2)))
        y = self.out_norm(self.mhs(x).permute(0, 2, 3, 1))
        return self.dropout(y * F.silu(z))

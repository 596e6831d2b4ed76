"""MHS-VM's Multi-Head Scan (MHS) token mixer on the routed scan kernel.

`MHS-VM: Multi-Head Scanning in Parallel Subspaces for Vision Mamba
<https://arxiv.org/abs/2406.05992>`_ (code: PixDeep/MHS-VM, ``models/vmunet/mhsm.py``).
The map is projected into ``h`` subspaces of ``s = C // h`` channels (``x_ssproj``); each
subspace is one *scan head* that runs a selective scan (N = 16) along its own pair of
routes a, b and their reverses -- ``[a, a~, b, b~]`` -- and weighs the four per-route
outputs by their agreement (Scan Route Attention); the heads' outputs are concatenated,
layer-normed (``cat_norm``) and projected back to C channels (``y_proj``).

The routes are data (:mod:`mlla_kernels.route_tables`), built for any H x W and cached,
so every input size works. All heads run as one :func:`mlla_kernels.routed_selective_scan`
over their 4h routes (each route reading its head's subspace, ``merge=False``: per-route
outputs in pixel order), on every kernel backend; Scan Route Attention has a hand-written
backward. Parameter names are upstream's, so the official files load unchanged (see
:class:`mlla_mm.models.backbones.vmunet.VMUNet`).

:class:`MHSGatedMixer` is the token mixer of MHS-VM's blocks (``in_proj`` -> depthwise conv
-> SiLU -> MHS -> ``out_norm``, gated by SiLU(z)); VM-UNet + MHS uses it on (B, H, W, C),
the VMamba-style backbone :class:`mlla_mm.models.backbones.MHSVMamba` as
:class:`MHSGatedMixer2d` on NCHW maps.
"""
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn
from torch.autograd.function import once_differentiable

from mlla_kernels import Route, routed_selective_scan

from .linear import Linear, linear
from .ssm import RouteSSMParameters, SSMInit, check_kernel_backend, resolve_dt_rank

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


class RouteSSM(RouteSSMParameters, BaseModule):
    """One selective-scan state-space model per route (upstream's ``MambaEngine``).

    Route k reads the map u, computes ``[dt (R) | B (N) | C (N)] = x_proj_weight[k] @ u`` at
    every pixel, maps dt to Δ with ``dt_projs_weight[k]`` (+ ``dt_projs_bias[k]``, softplus)
    and scans with ``A = -exp(A_logs)`` and skip ``Ds``; no gate, no conv, no expansion
    (d_inner = C). Parameters: ``x_proj_weight`` (K, R+2N, C), ``dt_projs_weight`` (K, C, R),
    ``dt_projs_bias`` (K, C), ``A_logs`` (K·C, N), ``Ds`` (K·C); ``x_proj_weight`` starts as
    upstream's ``nn.Linear`` (U(±1/sqrt(C))), the rest with Mamba's init
    (:class:`~.ssm.SSMInit`).

    Args:
        embed_dims (int): channels C of the map (upstream: the subspace width s).
        num_routes (int): routes K. Default: 4.
        d_state (int): state size N. Default: 16.
        dt_rank (int | str, optional): rank R of Δ's projection; None or 'auto' give
            ceil(C / 16).
        dt_min (float): smallest Δ of the initial bias range. Default: 1e-3.
        dt_max (float): largest Δ of the initial bias range. Default: 0.1.
        dt_init_floor (float): lower clamp of the initial Δ. Default: 1e-4.
        dt_scale (float): ``dt_projs_weight`` starts U(±dt_scale / sqrt(R)). Default: 1.0.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self, embed_dims: int, num_routes: int = 4, d_state: int = 16,
                 dt_rank: Union[int, str, None] = None, dt_min: float = 0.001,
                 dt_max: float = 0.1, dt_init_floor: float = 1e-4, dt_scale: float = 1.0,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.ssm_init = SSMInit(dt_min, dt_max, dt_init_floor, dt_scale).check('RouteSSM')
        self.embed_dims = embed_dims
        self.num_routes = num_routes
        self.d_state = d_state
        self.dt_rank = resolve_dt_rank(dt_rank, embed_dims, 'RouteSSM')
        self._add_route_ssm_parameters(num_routes, embed_dims, self.dt_rank, d_state)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Upstream's init, one copy per route: x_proj as ``nn.Linear``, then Mamba's."""
        self._reset_route_ssm_parameters()

    def forward(self, x: torch.Tensor, routes: Sequence[Route],
                kernel_backend: str = 'auto') -> torch.Tensor:
        """(B, C, H, W) -> (B, K, C, H, W): route k's output at each pixel (not summed)."""
        return scan_subspaces(x.permute(0, 2, 3, 1), (self, ), routes, kernel_backend)

    def extra_repr(self) -> str:
        return (f'embed_dims={self.embed_dims}, num_routes={self.num_routes}, '
                f'd_state={self.d_state}, dt_rank={self.dt_rank}')


def scan_subspaces(pixels: torch.Tensor, ssms: Sequence[RouteSSM], routes: Sequence[Route],
                   kernel_backend: str = 'auto') -> torch.Tensor:
    """h :class:`RouteSSM` s, each over its own subspace and routes, as one routed scan.

    ``pixels`` (B, H, W, h·s) holds the h subspaces side by side (SSM i reads channels
    i·s ... (i+1)·s - 1); ``routes`` the K routes of every SSM, SSM i's first (h·K in all).
    Returns (B, h·K, s, H, W): route k of SSM i at index i·K + k, each at its pixels.

    The projections act per pixel: they run once for all SSMs and routes, and the kernel reads
    delta, B, C and u along each route where they lie. Each route's inputs are contiguous
    (route, pixel, channel) blocks, channels innermost -- measured 1.2-1.5x faster in the scan
    than routes interleaved pixel by pixel -- which costs one copy of u (one map per route) and
    of the x_proj output.
    """
    batch, height, width, _ = pixels.shape
    heads, first = len(ssms), ssms[0]
    k, r, n, s = first.num_routes, first.dt_rank, first.d_state, first.embed_dims
    routes_all = heads * k
    if len(routes) != routes_all:
        raise ValueError(f'{heads} RouteSSM(s) of {k} routes need {routes_all} routes, '
                         f'got {len(routes)}')
    dtype, length = pixels.dtype, height * width
    sub = pixels.reshape(batch, length, heads, s)
    x_proj = torch.stack([m.x_proj_weight for m in ssms]).to(dtype)     # (h, K, R+2N, s)
    x_dbl = torch.einsum('blhs,hkcs->bhklc', sub, x_proj).reshape(batch, routes_all, length,
                                                                   r + 2 * n)
    dt_raw, B, C = torch.split(x_dbl, [r, n, n], dim=3)                   # (B, hK, L, *)
    dt_proj = torch.cat([m.dt_projs_weight for m in ssms]).to(dtype)   # (hK, s, R)
    delta = torch.einsum('bklr,kdr->bkld', dt_raw, dt_proj)             # (B, hK, L, s)
    u = sub.transpose(1, 2).unsqueeze(2).expand(batch, heads, k, length, s)
    u = u.reshape(batch, routes_all, length, s)

    def as_maps(t):  # (B, hK, L, c) -> (B, hK, c, H, W), a view
        return t.transpose(2, 3).unflatten(3, (height, width))

    # the SSM parameters in float32 (float64 for float64 inputs), as upstream's scan
    ssm = torch.float64 if dtype == torch.float64 else torch.float32
    A = -torch.exp(torch.cat([m.A_logs for m in ssms]).to(ssm))
    D = torch.cat([m.Ds for m in ssms]).to(ssm)
    bias = torch.cat([m.dt_projs_bias.flatten() for m in ssms]).to(ssm)
    return routed_selective_scan(as_maps(u), as_maps(delta), A, as_maps(B), as_maps(C), D=D,
                                 delta_bias=bias, delta_softplus=True, routes=routes,
                                 merge=False, backend=kernel_backend)


class ScanRouteAttention(torch.autograd.Function):
    """Scan Route Attention over dim 1 with a hand-written backward (see
    :func:`scan_route_attention`). The K routes are read as K slices of one memory layout and
    every step is one elementwise pass over (B, ...) in that layout: torch's reductions over a
    strided route dim (``std``: 26 ms for (1, 4, 24, 64, 64) against 0.1 ms for ``sum`` of
    the same) and passes that mix two layouts are many times slower on the CPU."""

    @staticmethod
    def forward(ctx, ys: torch.Tensor, threshold: float):
        y = ys.unbind(1)
        count = len(y)
        total, low = y[0], y[0]
        for yk in y[1:]:
            total = total + yk
            low = torch.minimum(low, yk)
        mean = total / count
        var = sum((yk - mean).square() for yk in y) / (count - 1)
        std = var.sqrt()
        # mean_k(y_k - min y) = mean - min
        denom = mean - low + 1e-5
        out = total * F.relu(std / denom - threshold)
        ctx.save_for_backward(ys, total, low, std, denom)
        ctx.threshold = threshold
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        ys, total, low, std, denom = ctx.saved_tensors
        y = ys.unbind(1)
        count = len(y)
        if grad.stride() != total.stride():   # one pass into the routes' layout
            grad = torch.empty_like(total).copy_(grad)
        zero = grad.new_zeros(())
        # out = total * relu(cv - t), cv = std / (mean - min + eps)
        cv = std / denom
        d_cv = torch.where(cv > ctx.threshold, grad * total, zero)
        d_std = d_cv / denom
        d_spread = -d_std * cv
        # d std / d y_k = (y_k - mean) / ((K - 1) std); 0 where all routes agree (as torch.std)
        coef = torch.where(std > 0, d_std / (std * (count - 1)), zero)
        # what reaches every route alike: the total (output and mean), the spread's mean and
        # the std's -mean; the spread's min reaches the minimal route (shared evenly on exact
        # ties, as amin; upstream's min(dim) picks one of them)
        common = grad * (cv - ctx.threshold).clamp_min(0) + d_spread / count
        common -= coef * (total / count)
        is_low = [yk == low for yk in y]
        ties = is_low[0].to(grad.dtype)
        for low_k in is_low[1:]:
            ties += low_k
        common_low = common - d_spread / ties
        d_ys = torch.empty_like(ys)
        for yk, low_k, d_k in zip(y, is_low, d_ys.unbind(1)):
            if torch.compiler.is_compiling():   # Dynamo takes no strided out= (same values)
                d_k.copy_(torch.addcmul(torch.where(low_k, common_low, common), coef, yk))
            else:
                torch.addcmul(torch.where(low_k, common_low, common), coef, yk, out=d_k)
        return d_ys, None


def scan_route_attention(ys: torch.Tensor, threshold: float) -> torch.Tensor:
    """Scan Route Attention (upstream's ``GFU``): (B, K, ...) -> (B, ...).

    The K route outputs are summed and weighted, element by element, by how much they
    disagree: ``sum_k y_k * ReLU(cv - threshold)`` with the relative coefficient of variation
    ``cv = std_k(y) / (mean_k(y - min_k y) + 1e-5)`` (unbiased std).
    """
    if ys.shape[1] < 2:
        raise ValueError(f'Scan Route Attention needs at least 2 routes, got {ys.shape[1]}')
    return ScanRouteAttention.apply(ys, float(threshold))


class ScanHead(BaseModule):
    """One head of MHS (upstream's ``ScanHead``): a :class:`RouteSSM` ``mambaeng`` with the
    head's four routes ``[a, a~, b, b~]``. :class:`MHS` runs all its heads in one scan.

    Args:
        embed_dims (int): the subspace width s.
        head (str): the head family: 'C', 'X', 'S' or 'Z' (:data:`HEAD_ROUTES`).
        init_cfg (dict, optional): mmengine init config.
        **ssm_kwargs: arguments of :class:`RouteSSM` (d_state, dt_rank, ...).
    """

    def __init__(self, embed_dims: int, head: str, init_cfg: Optional[dict] = None,
                 **ssm_kwargs):
        super().__init__(init_cfg=init_cfg)
        self.head = head
        self.routes = head_routes(head)
        self.mambaeng = RouteSSM(embed_dims, num_routes=len(self.routes), **ssm_kwargs)

    def extra_repr(self) -> str:
        return f'head={self.head!r}, routes={", ".join(map(str, self.routes))}'


class MHS(BaseModule):
    """Multi-Head Scan module (upstream's ``MHSM``): NCHW in, NCHW out.

    ``x -> x_ssproj (C -> h·s) -> h scan heads -> Scan Route Attention per head -> concat
    -> cat_norm (LayerNorm h·s) -> y_proj (h·s -> C)``, with s = C // h. The heads run as one
    routed scan of their 4h routes (:func:`scan_subspaces`). Parameter names as upstream:
    ``x_ssproj.weight`` (h·s, C), ``scanhead_{C,X,S,Z}.mambaeng.{x_proj_weight,
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
            (``--cfg-options``, or the attribute). Default: 0.0.
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
        self.kernel_backend = check_kernel_backend(kernel_backend, 'MHS')
        self.heads = resolve_heads(heads)
        self.sra_threshold = float(sra_threshold)
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
        self.x_ssproj = Linear(embed_dims, inner, bias=False)
        for head in self.heads:
            self.add_module(f'scanhead_{head}', ScanHead(self.dim_sub, head, d_state=d_state,
                                                         dt_rank=dt_rank))
        # every head's routes, head i's at 4i .. 4i + 3
        self.routes = tuple(route for head in self.scan_heads() for route in head.routes)
        if with_proj:
            self.cat_norm = nn.LayerNorm(inner)
            self.y_proj = Linear(inner, embed_dims, bias=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Upstream's VSSM init for the linear maps (N(0, 0.02); the cut at ±2 of its
        trunc_normal_ is 100 std away), unit LayerNorm; the SSMs keep Mamba's init."""
        nn.init.normal_(self.x_ssproj.weight, std=0.02)
        if self.with_proj:
            nn.init.normal_(self.y_proj.weight, std=0.02)
            self.cat_norm.reset_parameters()

    def scan_heads(self) -> Tuple[ScanHead, ...]:
        return tuple(getattr(self, f'scanhead_{h}') for h in self.heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        heads = self.scan_heads()
        # per-pixel projections as GEMMs over (pixels, channels), channels innermost
        subspaces = linear(x.permute(0, 2, 3, 1), self.x_ssproj.weight)   # (B, H, W, h·s)
        ys = scan_subspaces(subspaces, [head.mambaeng for head in heads], self.routes,
                            self.kernel_backend)                            # (B, 4h, s, H, W)
        ys = ys.unflatten(1, (len(heads), -1)).flatten(0, 1)                # (B·h, 4, s, H, W)
        y = scan_route_attention(ys, self.sra_threshold)                     # (B·h, s, H, W)
        y = y.unflatten(0, (batch, len(heads))).permute(0, 3, 4, 1, 2)      # (B, H, W, h, s)
        y = y.reshape(batch, height, width, -1)
        if self.with_proj:
            y = self.y_proj(self.cat_norm(y))
        return y.permute(0, 3, 1, 2)                                         # channels-last memory

    def extra_repr(self) -> str:
        return (f'embed_dims={self.embed_dims}, heads={"".join(self.heads)}, '
                f'dim_sub={self.dim_sub}, with_proj={self.with_proj}, '
                f'sra_threshold={self.sra_threshold}')


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
        init_cfg (dict, optional): mmengine init config.
        **mhs_kwargs: arguments of :class:`MHS` (heads, sra_threshold, ...).
    """

    def __init__(self, embed_dims: int, conv_kernel: int = 3, dropout: float = 0.0,
                 init_cfg: Optional[dict] = None, **mhs_kwargs):
        super().__init__(init_cfg=init_cfg)
        self.in_proj = Linear(embed_dims, 2 * embed_dims, bias=False)
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


class MHSGatedMixer2d(MHSGatedMixer):
    """:class:`MHSGatedMixer` on NCHW maps (channels-last memory: the permutes are free
    views), as the ``op`` of VMamba's block frame (:class:`~mlla_mm.models.backbones.mhs_vmamba
    .MHSVSSBlock`); same arguments and keys."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

"""Mamba's selective SSM and linear attention as one token mixer.

Han et al., "Demystify Mamba in Vision: A Linear Attention Perspective" (NeurIPS 2024,
arXiv 2405.16605), Sec. 4.1, eqs. (11)/(12), write both as one recurrence over tokens i::

    S_i = F_i ⊙ S_{i-1} + K_iᵀ (G_i ⊙ V_i)        F_i: forget gate, G_i: input gate
    y_i = Q_i S_i / N_i  +  D ⊙ V_i                N_i: normaliser, D: shortcut

* linear attention: F = 1 (so the order of tokens does not matter and all N tokens are
  summed at once, the parallel matmul form ``Q (Kᵀ V)``), G = 1, N_i = Q_i Z_i with
  Z = Σ_j K_jᵀ, D = 0, several heads (each head's Q, K serve its C/h value channels);
* Mamba's selective SSM: F_i = exp(Δ_i A) (per channel and state, A < 0), G_i = Δ_i =
  softplus(x_i W1 W2 + b) (per channel), N_i = 1, a learnt D, one head whose keys/queries
  (Mamba's B, C) have ``d_state`` channels and serve every value channel.

The paper ablates these as six designs -- input gate, forget gate, shortcut, no attention
normalisation, single head, and Mamba's block design -- on a Swin-T-shaped linear-attention
model, and replaces the forget gate by positional encodings (APE, LePE, CPE, RoPE) to get
MLLA/MILA. :class:`UnifiedDesign` holds the six switches and the positional-encoding choice,
:data:`DESIGN_PRESETS` the paper's rows, and :class:`UnifiedLinearAttention` computes the
formula: with the forget gate on, on :func:`mlla_kernels.selective_scan` (B/C = keys/queries,
grouped per head; u = values; Δ = the gate) along a token order; with it off, in the parallel
(matmul) form.

Conventions (where the paper leaves a choice, see ``docs/demystify.md``):

* the normaliser keeps its meaning "the attention weights Q_i K_jᵀ (times the forget gate's
  decay between j and i) sum to 1": with the forget gate it is the same recurrence run on a
  vector of ones, ``Z_i = F_i ⊙ Z_{i-1} + K_iᵀ``, per channel. The input gate is a gate on
  the values only (the literal slot G_i of eq. 11), so it does not enter Z.
* the parallel form computes MLLA's ``Q · mean_j(K_jᵀ V_j)`` (the 1/N keeps the sum
  resolution-independent); with normalisation that is exactly eq. (2).
* RoPE rotates Q, K in the numerator only; the normaliser uses the un-rotated Q, K (as MLLA:
  rotated features would make it sign-indefinite).
"""
import dataclasses
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn

from mlla_kernels import CROSS_SCAN_ROUTES, route_table, selective_scan

from .linear import Linear, linear
from .rope import RopeTables, apply_rope_2d, rope_2d_tables
from .ssm import SSMInit, check_kernel_backend, resolve_dt_rank
# Block designs (Sec. 4.3, Tab. 1): the Transformer block (linear attention + MLP, Fig. 3a);
# Mamba's block replacing the whole block ("Block Design all.", expansion E = 2, Fig. 3b);
# Mamba's block replacing the attention sub-block, MLP kept ("sub.", E = 1; MILA, Fig. 3c).
BLOCK_DESIGNS = ('transformer', 'mamba', 'mamba_mlp')
BLOCK_EXPANSION = {'transformer': 1.0, 'mamba': 2.0, 'mamba_mlp': 1.0}
# Tab. 2: absolute (learnt, after the stem), locally-enhanced (depthwise conv on V, added to
# the mixer output), conditional (depthwise conv residual before each sub-block), rotary.
POSITIONAL_ENCODINGS = ('ape', 'lepe', 'cpe', 'rope')
# Token orders of the forget gate's recurrence. The paper flattens the image into one 1-D
# sequence scanned causally (Sec. 4.2: "the receptive field of each image token [is] its
# preceding sequence"); 'row' is that, row-major. The others are the 2-D orders of the vision
# Mambas it compares with: Vim's forward + backward, VMamba's four routes.
SCAN_ORDERS = ('row', 'row_bidirectional', 'cross')
# Their routes in mlla_kernels' vocabulary (VMamba's order: its checkpoints depend on it).
SCAN_ORDER_ROUTES = {'row_bidirectional': CROSS_SCAN_ROUTES[2], 'cross': CROSS_SCAN_ROUTES[4]}
# Kernel function phi of the queries/keys: ELU + 1 (linear attention, MLLA), or none (Mamba's
# B, C are plain projections). Not one of the paper's six; 'identity' needs normalize=False.
FEATURE_MAPS = ('elu', 'identity')
# MLLA's epsilon of the normaliser, per token (1e-6 added to Q·mean(K)).
NORM_EPS = 1e-6
# Floor of Δ wherever the scan needs a division by it (forget gate without input gate, and the
# normaliser's recurrence): keeps 1/Δ finite; exp(ΔA) is 1 - O(1e-6) there anyway.
DELTA_FLOOR = 1e-6


@dataclasses.dataclass(frozen=True)
class UnifiedDesign:
    """The six designs that separate Mamba from linear attention, plus positional encodings.

    Defaults are linear attention's choices (the paper's baseline); Mamba's are the opposite
    of each of the first six. Build one from a preset name or a dict with :meth:`build`.

    Attributes:
        input_gate (bool): scale each value by Δ_i = softplus(x_i W1 W2 + b) before it enters
            the state (Mamba: True).
        forget_gate (bool): decay the state by exp(Δ_i A) at every token, which makes the
            computation a recurrence along ``scan_order`` (Mamba: True).
        shortcut (bool): add D ⊙ V_i to the output (Mamba: True).
        normalize (bool): divide by Q_i Z_i so the attention weights sum to 1 (linear
            attention: True; Mamba: False).
        multi_head (bool): h heads of C/h query/key channels each (linear attention: True);
            False is Mamba's single head whose queries/keys have ``d_state`` channels.
        block (str): block design, one of ``'transformer'`` (linear attention + MLP),
            ``'mamba'`` (Mamba's block instead of the whole block, E = 2) or ``'mamba_mlp'``
            (Mamba's block instead of the attention sub-block, E = 1, MLP kept: MILA).
            In the Mamba blocks the values are the block's projected input (no V projection).
        pos_encodings (tuple of str): any of ``'ape'``, ``'lepe'``, ``'cpe'``, ``'rope'``
            (the paper's forget-gate substitutes, Tab. 2; MLLA uses LePE + CPE + RoPE).
        scan_order (str): token order of the forget gate's recurrence: ``'row'`` (default,
            the paper's flattened causal sequence), ``'row_bidirectional'`` (Vim: forward and
            backward) or ``'cross'`` (VMamba: row-, column-major and both reversed). Routes are
            averaged (with normalisation: their weights are normalised together).
        feature_map (str): ``'elu'`` (φ = ELU + 1 on Q, K) or ``'identity'`` (Mamba's B, C).
    """

    input_gate: bool = False
    forget_gate: bool = False
    shortcut: bool = False
    normalize: bool = True
    multi_head: bool = True
    block: str = 'transformer'
    pos_encodings: Tuple[str, ...] = ()
    scan_order: str = 'row'
    feature_map: str = 'elu'

    def __post_init__(self):
        for name in ('input_gate', 'forget_gate', 'shortcut', 'normalize', 'multi_head'):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise TypeError(f'UnifiedDesign.{name} must be True or False, got {value!r}')
        _check_choice('block', self.block, BLOCK_DESIGNS)
        _check_choice('scan_order', self.scan_order, SCAN_ORDERS)
        _check_choice('feature_map', self.feature_map, FEATURE_MAPS)
        encodings = self.pos_encodings
        if isinstance(encodings, str):
            encodings = (encodings, ) if encodings else ()
        if not isinstance(encodings, (tuple, list)):
            raise TypeError('UnifiedDesign.pos_encodings must be a tuple of names from '
                            f'{POSITIONAL_ENCODINGS}, got {encodings!r}')
        unknown = [e for e in encodings if e not in POSITIONAL_ENCODINGS]
        if unknown:
            raise ValueError(f'UnifiedDesign.pos_encodings: unknown {unknown}; choose from '
                             f'{POSITIONAL_ENCODINGS}')
        # Canonical order, so equal designs compare (and hash) equal.
        object.__setattr__(self, 'pos_encodings',
                           tuple(e for e in POSITIONAL_ENCODINGS if e in encodings))
        if self.feature_map == 'identity' and self.normalize:
            raise ValueError("UnifiedDesign: feature_map='identity' needs normalize=False "
                             '(with sign-indefinite queries/keys Q·ΣK can be 0); use '
                             "feature_map='elu' or turn normalize off")

    @property
    def expansion(self) -> float:
        """Channel expansion E of the block's inner width (Mamba's block: 2, MILA's: 1)."""
        return BLOCK_EXPANSION[self.block]

    @property
    def value_proj(self) -> bool:
        """Whether the mixer projects its own values (only in the Transformer block)."""
        return self.block == 'transformer'

    def changes_from(self, other: 'UnifiedDesign') -> Dict[str, Tuple[Any, Any]]:
        """``{field: (other's value, this value)}`` for every field that differs."""
        return {f.name: (getattr(other, f.name), getattr(self, f.name))
                for f in dataclasses.fields(self)
                if getattr(self, f.name) != getattr(other, f.name)}

    @classmethod
    def build(cls, design: Union[str, Mapping, 'UnifiedDesign']) -> 'UnifiedDesign':
        """A design from a preset name (see :data:`DESIGN_PRESETS`), a dict, or itself.

        A dict lists fields (missing ones take linear attention's choice), optionally on top
        of a preset: ``dict(preset='linear_attention', forget_gate=True, scan_order='cross')``.
        """
        if isinstance(design, cls):
            return design
        if isinstance(design, str):
            key = DESIGN_ALIASES.get(design.lower(), design.lower())
            if key not in DESIGN_PRESETS:
                raise ValueError(f'unknown design {design!r}; choose a preset from '
                                 f'{sorted(set(DESIGN_PRESETS) | set(DESIGN_ALIASES))} or pass '
                                 f'a dict of {[f.name for f in dataclasses.fields(cls)]} '
                                 "(optionally with preset='...')")
            return DESIGN_PRESETS[key]
        if isinstance(design, Mapping):
            settings = dict(design)
            preset = settings.pop('preset', None)
            base = cls.build(preset) if preset is not None else cls()
            names = [f.name for f in dataclasses.fields(cls)]
            unknown = sorted(set(settings) - set(names))
            if unknown:
                raise ValueError(f'unknown design fields {unknown}; a design dict takes '
                                 f'{names} (and optionally preset=...)')
            return dataclasses.replace(base, **settings)
        raise TypeError('design must be a preset name, a dict or a UnifiedDesign, got '
                        f'{type(design).__name__}')


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f'UnifiedDesign.{name} must be one of {choices}, got {value!r}')


_LA = UnifiedDesign()
# The paper's rows. Tab. 1: each of the six designs applied alone to the linear-attention
# baseline; Tab. 2: the baseline plus one positional encoding instead of the forget gate.
DESIGN_PRESETS: Dict[str, UnifiedDesign] = {
    'linear_attention': _LA,
    'input_gate': dataclasses.replace(_LA, input_gate=True),
    'forget_gate': dataclasses.replace(_LA, forget_gate=True),
    'shortcut': dataclasses.replace(_LA, shortcut=True),
    'no_normalization': dataclasses.replace(_LA, normalize=False),
    'single_head': dataclasses.replace(_LA, multi_head=False),
    'block_design_all': dataclasses.replace(_LA, block='mamba'),
    'block_design_sub': dataclasses.replace(_LA, block='mamba_mlp'),
    'ape': dataclasses.replace(_LA, pos_encodings=('ape', )),
    'lepe': dataclasses.replace(_LA, pos_encodings=('lepe', )),
    'cpe': dataclasses.replace(_LA, pos_encodings=('cpe', )),
    'rope': dataclasses.replace(_LA, pos_encodings=('rope', )),
    # All six of Mamba's designs, with Mamba's plain B/C projections: Mamba's block on the
    # selective SSM (the Swin-T-shaped macro architecture around it stays the same).
    'mamba': UnifiedDesign(input_gate=True, forget_gate=True, shortcut=True, normalize=False,
                           multi_head=False, block='mamba', feature_map='identity'),
    # MLLA / MILA: the two designs that matter, with the forget gate replaced by LePE + CPE
    # + RoPE (Sec. 5.3), on the same macro architecture (MILA-T itself: the MLLA backbone).
    'mlla': dataclasses.replace(_LA, block='mamba_mlp', pos_encodings=('lepe', 'cpe', 'rope')),
}
DESIGN_ALIASES = {'baseline': 'linear_attention', 'mila': 'mlla'}


@dataclasses.dataclass(frozen=True)
class PaperRow:
    """A row of the paper's Tab. 1/2 (Swin-T-shaped model, ImageNet-1k, 224²)."""

    table: str
    label: str
    top1: Optional[float]
    params_m: Optional[float]
    gflops: Optional[float]
    throughput: Optional[int]


# Published numbers (arXiv 2405.16605v2, Tab. 1 and 2; throughput in images/s on an RTX 3090).
PAPER_ROWS: Dict[str, PaperRow] = {
    'linear_attention': PaperRow('Tab. 1/2', 'Baseline', 77.6, 28, 4.5, 1152),
    'input_gate': PaperRow('Tab. 1', '+ Input Gate', 77.8, 29, 4.5, 1069),
    'forget_gate': PaperRow('Tab. 1/2', '+ Forget Gate', 78.4, 29, 4.8, 743),
    'shortcut': PaperRow('Tab. 1', '+ Shortcut', 77.8, 28, 4.5, 1066),
    'no_normalization': PaperRow('Tab. 1', '- Normalization', 72.4, 28, 4.5, 1215),
    'single_head': PaperRow('Tab. 1', '- Multi-head Design', 73.5, 24, 3.9, 1540),
    'block_design_all': PaperRow('Tab. 1', '+ Block Design all.', 79.4, 28, 4.7, 915),
    'block_design_sub': PaperRow('Tab. 1', '+ Block Design sub.', 80.9, 31, 4.8, 1010),
    'ape': PaperRow('Tab. 2', '+ APE', 80.0, 30, 4.5, 1132),
    'lepe': PaperRow('Tab. 2', '+ LePE', 81.6, 28, 4.5, 1074),
    'cpe': PaperRow('Tab. 2', '+ CPE', 81.7, 28, 4.5, 1099),
    'rope': PaperRow('Tab. 2', '+ RoPE', 80.0, 28, 4.5, 1113),
    'mamba': PaperRow('-', 'all six designs (Mamba)', None, None, None, None),
    'mlla': PaperRow('-', 'block sub. + LePE + CPE + RoPE (MILA)', None, None, None, None),
}


def scan_routes(order: str, hw_shape: Tuple[int, int], device=None) -> Optional[torch.Tensor]:
    """Token indices ``(R, h*w)`` visited by each route (route r, step t -> token), or None
    for the plain row-major order (no reordering needed).

    ``'row_bidirectional'``: row-major, then reversed. ``'cross'``: row-major, column-major
    (down each column, then the next column), both reversed -- VMamba v2's route order
    (:data:`mlla_kernels.CROSS_SCAN_ROUTES`).
    """
    tables = _route_tables(order, hw_shape, device)
    return None if tables is None else tables[0]


def _route_tables(order: str, hw_shape: Tuple[int, int], device=None):
    """``(order, inverse)`` tables of the routes (cached by mlla_kernels), or None for 'row'."""
    _check_choice('scan_order', order, SCAN_ORDERS)
    if order == 'row':
        return None
    return route_table(SCAN_ORDER_ROUTES[order], hw_shape[0], hw_shape[1], device=device)


class UnifiedLinearAttention(BaseModule):
    """Token mixer computing the paper's unified formulation (eqs. 11/12) for one design.

    Input tokens ``x`` (B, L, C) on a row-major ``h x w`` grid; output (B, L, C), before
    the block's output projection. Queries/keys: ``[Q | K] = φ(qk(x))``; values: ``v(x)`` in
    the Transformer block, ``x`` itself in the Mamba blocks (whose in-projection already made
    them). Heads are contiguous channel groups (group g of the keys serves value channels
    g*C/G ... (g+1)*C/G - 1), the layout of both MLLA and grouped B/C in the kernels.

    Parameters (only those the design needs): ``qk`` (C -> 2·key_dims), ``v`` (C -> C),
    ``dt_down`` (C -> R, no bias) and ``dt_proj`` (R -> C; its bias is Mamba's Δ bias) for
    the gates, ``A_log`` (C, N) for the forget gate (A = -exp(A_log)), ``D`` (C) for the
    shortcut, ``lepe`` (depthwise 3x3) for LePE.

    Args:
        embed_dims (int): token channels C (= value channels).
        num_heads (int): heads when ``design.multi_head``; each has C/num_heads query/key
            channels. Ignored (one head) otherwise.
        design: a :class:`UnifiedDesign`, a preset name (:data:`DESIGN_PRESETS`) or a dict.
        d_state (int): query/key channels of the single head (Mamba's state size N).
            Default: 16.
        qkv_bias (bool): bias in the query/key (and value) projections. Default: True.
        dt_rank (int | str, optional): rank R of the gate projection; None or 'auto':
            ceil(C / 16).
        dt_min, dt_max, dt_init_floor (float): initial Δ = softplus(bias), log-uniform in
            [dt_min, dt_max] and floored (Mamba's init, :class:`~.ssm.SSMInit`).
        kernel_backend (str): backend of :func:`mlla_kernels.selective_scan` for the forget
            gate: 'auto', 'naive', 'torch', 'numba' or 'triton' (see ``mlla_kernels``).
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 design: Union[str, Mapping, UnifiedDesign] = 'linear_attention',
                 d_state: int = 16,
                 qkv_bias: bool = True,
                 dt_rank: Union[int, str, None] = None,
                 dt_min: float = 1e-3,
                 dt_max: float = 0.1,
                 dt_init_floor: float = 1e-4,
                 kernel_backend: str = 'auto',
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        owner = 'UnifiedLinearAttention'
        design = UnifiedDesign.build(design)
        self.kernel_backend = check_kernel_backend(kernel_backend, owner)
        self.ssm_init = SSMInit(dt_min, dt_max, dt_init_floor).check(owner)
        c = embed_dims
        self.design = design
        self.embed_dims = c
        self.groups = num_heads if design.multi_head else 1
        self.key_dims = c if design.multi_head else int(d_state)
        if self.groups < 1 or c % self.groups or self.key_dims % self.groups:
            raise ValueError(f'{owner}: {c} channels do not split into {num_heads} heads; '
                             'choose num_heads dividing the channels')
        if self.key_dims < 1:
            raise ValueError(f'{owner}: d_state must be >= 1, got {d_state}')
        if 'rope' in design.pos_encodings and self.key_dims % 4:
            raise ValueError(f'{owner}: 2-D RoPE rotates {self.key_dims} query/key channels, '
                             'which must be divisible by 4 (choose d_state or the widths '
                             'accordingly)')
        self.head_key_dims = self.key_dims // self.groups
        self.dt_rank = resolve_dt_rank(dt_rank, c, owner)

        self.qk = Linear(c, 2 * self.key_dims, bias=qkv_bias)
        self.v = Linear(c, c, bias=qkv_bias) if design.value_proj else None
        if design.input_gate or design.forget_gate:
            self.dt_down = Linear(c, self.dt_rank, bias=False)
            self.dt_proj = Linear(self.dt_rank, c, bias=True)
        if design.forget_gate:
            self.A_log = nn.Parameter(torch.empty(c, self.head_key_dims))
        if design.shortcut:
            self.D = nn.Parameter(torch.empty(c))
        self.lepe = (nn.Conv2d(c, c, 3, padding=1, groups=c)
                     if 'lepe' in design.pos_encodings else None)
        self.reset_ssm_parameters()

    @property
    def dims(self) -> int:
        """``embed_dims`` under its first name."""
        return self.embed_dims

    def reset_ssm_parameters(self) -> None:
        """Mamba's init of the gates (``dt_proj``), ``A_log`` and ``D`` -- those the design
        has (:class:`~.ssm.SSMInit`)."""
        dt_proj = getattr(self, 'dt_proj', None)
        self.ssm_init.reset_(
            dt_projs=[(dt_proj.weight, dt_proj.bias)] if dt_proj is not None else [],
            A_logs=[self.A_log] if hasattr(self, 'A_log') else [],
            Ds=[self.D] if hasattr(self, 'D') else [])

    # -- pieces --------------------------------------------------------------------------
    def queries_keys(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(Q, K)`` = φ(qk(x)), each (B, L, key_dims)."""
        q, k = self.qk(x).chunk(2, dim=-1)
        if self.design.feature_map == 'elu':
            q, k = F.elu(q) + 1.0, F.elu(k) + 1.0
        return q, k

    def values(self, x: torch.Tensor) -> torch.Tensor:
        return self.v(x) if self.v is not None else x

    def gate_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Δ before bias and softplus: ``dt_proj.weight @ dt_down(x)`` (B, L, C)."""
        return linear(self.dt_down(x), self.dt_proj.weight)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """Δ = softplus(x W1 W2 + b) (B, L, C): the input gate, and the forget gate's step."""
        return F.softplus(self.gate_logits(x) + self.dt_proj.bias)

    def _split_heads(self, t: torch.Tensor) -> torch.Tensor:
        """(B, L, G*c) -> (B, G, L, c)."""
        b, n, c = t.shape
        return t.reshape(b, n, self.groups, c // self.groups).transpose(1, 2)

    # -- the two forms -------------------------------------------------------------------
    def parallel(self, q, k, v, q_rot, k_rot) -> torch.Tensor:
        """Forget gate off: ``Q_i mean_j(K_jᵀ V_j) [/ Q_i mean_j K_jᵀ]`` per head, all tokens.

        All arguments (B, L, ·); values already input-gated. Returns (B, L, C).
        """
        b, n, c = v.shape
        q, k, v, q_rot, k_rot = map(self._split_heads, (q, k, v, q_rot, k_rot))
        scale = n ** -0.5  # 1/n as two 1/sqrt(n) factors, as MLLA (keeps KᵀV small in fp16)
        out = q_rot @ ((k_rot.transpose(-2, -1) * scale) @ (v * scale))
        if self.design.normalize:
            out = out / (q @ k.mean(dim=-2, keepdim=True).transpose(-2, -1) + NORM_EPS)
        return out.transpose(1, 2).reshape(b, n, c)

    def recurrent(self, q, k, v, q_rot, k_rot, gate_logits, hw_shape) -> torch.Tensor:
        """Forget gate on: the recurrence along ``design.scan_order`` on the selective scan.

        ``h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t u_t`` with B = K, C = Q (grouped per head),
        u = the values (divided by Δ when the input gate is off, so the kernel's Δ factor
        cancels). The normaliser is the same scan on u = 1/Δ with the un-rotated Q, K.
        All token arguments (B, L, ·); returns (B, L, C).
        """
        design = self.design
        b, n, c = v.shape
        bias = self.dt_proj.bias.float()
        A = -torch.exp(self.A_log.float())

        def keys(t):  # (B, L, G*N) -> (B, G, N, L)
            return t.reshape(b, n, self.groups, self.head_key_dims).permute(0, 2, 3, 1)

        u = v.transpose(1, 2)
        logits = gate_logits.transpose(1, 2)
        if design.input_gate and not design.normalize:
            # Exactly Mamba's call: bias and softplus inside the kernel, u unchanged.
            delta, delta_bias, softplus = logits, bias, True
            us, Bs, Cs = [u], [keys(k_rot)], [keys(q_rot)]
        else:
            delta = F.softplus(logits + bias[:, None]).clamp_min(DELTA_FLOOR).to(u.dtype)
            delta_bias, softplus = None, False
            us = [u if design.input_gate else u / delta]
            Bs, Cs = [keys(k_rot)], [keys(q_rot)]
            if design.normalize:
                us.append(1.0 / delta)
                Bs.append(keys(k))
                Cs.append(keys(q))
        parts = len(us)
        u_all, B_all, C_all = torch.cat(us), torch.cat(Bs), torch.cat(Cs)
        delta_all = delta.repeat(parts, 1, 1)
        tables = _route_tables(design.scan_order, hw_shape, device=v.device)
        if tables is not None:
            u_all, delta_all, B_all, C_all = (_to_routes(t, tables[0])
                                              for t in (u_all, delta_all, B_all, C_all))
        y = selective_scan(u_all, delta_all, A, B_all.contiguous(), C_all.contiguous(),
                           delta_bias=delta_bias, delta_softplus=softplus,
                           backend=self.kernel_backend)
        num_routes = 1
        if tables is not None:
            y = _from_routes(y, tables[1])
            num_routes = tables[1].shape[0]
        if design.normalize:
            num, den = y.chunk(2)
            y = num / (den + NORM_EPS * n)
        else:
            y = y / num_routes
        return y.transpose(1, 2)

    def forward(self, x: torch.Tensor, hw_shape: Tuple[int, int],
                rope_tables: Optional[RopeTables] = None) -> torch.Tensor:
        """Tokens ``x`` (B, h*w, C) on the row-major grid ``hw_shape`` -> (B, h*w, C).

        ``rope_tables`` (from :func:`rope_2d_tables` for ``key_dims`` channels) may be passed
        to share them between the blocks of a stage; they are built here otherwise.
        """
        b, n, c = x.shape
        h, w = hw_shape
        if h * w != n or c != self.embed_dims:
            raise ValueError(f'UnifiedLinearAttention: expected (batch, {h}*{w}, '
                             f'{self.embed_dims}) tokens, got {tuple(x.shape)}')
        design = self.design
        q, k = self.queries_keys(x)
        v = self.values(x)
        q_rot, k_rot = q, k
        if 'rope' in design.pos_encodings:
            if rope_tables is None:
                rope_tables = rope_2d_tables(hw_shape, self.key_dims, device=x.device)
            q_rot, k_rot = apply_rope_2d(q, rope_tables), apply_rope_2d(k, rope_tables)
        if design.forget_gate:
            y = self.recurrent(q, k, v, q_rot, k_rot, self.gate_logits(x), hw_shape)
        else:
            gated = v * self.gate(x) if design.input_gate else v
            y = self.parallel(q, k, gated, q_rot, k_rot)
        if design.shortcut:
            y = y + self.D * v
        if self.lepe is not None:
            y = y + self.lepe(v.transpose(1, 2).reshape(b, c, h, w)).flatten(2).transpose(1, 2)
        return y

    def extra_repr(self) -> str:
        on = [name for name in ('input_gate', 'forget_gate', 'shortcut', 'normalize',
                                'multi_head') if getattr(self.design, name)]
        return (f'embed_dims={self.embed_dims}, groups={self.groups}, key_dims={self.key_dims}, '
                f'on={on}, pos_encodings={self.design.pos_encodings}, '
                f'scan_order={self.design.scan_order!r}, kernel_backend={self.kernel_backend!r}')


def _to_routes(t: torch.Tensor, routes: torch.Tensor) -> torch.Tensor:
    """(B, *, L) -> (R*B, *, L): each route's copy of ``t`` in that route's token order."""
    num_routes, length = routes.shape
    t = t[..., routes.reshape(-1)].unflatten(-1, (num_routes, length))   # (B, *, R, L)
    return t.movedim(-2, 0).flatten(0, 1)


def _from_routes(y: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """(R*B, C, L) in route order -> (B, C, L) in token order, summed over the routes
    (``inverse[r, p]``: the step at which route r visits token p)."""
    num_routes = inverse.shape[0]
    y = y.unflatten(0, (num_routes, -1))
    return sum(y[r][..., inverse[r]] for r in range(num_routes))

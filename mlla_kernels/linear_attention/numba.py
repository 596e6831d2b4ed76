"""MLLA's linear attention on the CPU: fused numba kernels, forward and recompute-backward.

Tokens are channels-last maps (batch, H, W, C) -- the layout of MLLA's blocks -- and every pass
walks the tokens once with the channels as vector lanes (see :mod:`.naive` for the formula):

**Forward**, two passes over the tokens:

1. per (image, token range): q, k = ELU + 1 of the projection, k's sum, k~ = RoPE(k), and the
   range's share of k~^T v (per head, d x d) -- partial sums per program, added afterwards in a
   fixed order (the same for any thread count); then kv = sum / n, kmean = sum / n;
2. per (image, token range): q, z = 1 / (q . kmean + 1e-6), q~ = RoPE(q), attn = (q~ kv) z,
   LePE (the 3x3 taps of v + bias), y = (attn + LePE) * SiLU(gate), stored once.

Nothing of the per-token intermediates (q, k, their rotations, the normaliser, the LePE output,
the ungated output) is stored; the backward keeps the inputs and kv, kmean (per head d x d).

**Backward**, two passes, each recomputing what it needs:

A. per (image, token range): the forward's output pieces again, the gate's gradient,
   g = dy * SiLU(gate) (stored: LePE's input gradient reads it at the neighbours), the LePE
   weight and bias gradients, dkv += q~^T (g z), dkmean (through z), and q's gradient
   (RoPE transposed, ELU' applied) -- partial sums per program for dkv, dkmean, LePE's;
B. per (image, token range): k's gradient (from dkv through k~, and from dkmean) and v's
   (from dkv, and LePE's taps of g at the mirrored neighbours).

Computation in float32 for fp16/bf16/fp32 inputs (float64 for float64, with libm math).
"""
from typing import NamedTuple

import numpy as np
import torch

from ..numba_common import add_taps, add_weight_taps, cpu_compute_dtype, tile_bounds
from ..routed_scan.numba import _run
from ..routed_scan.numba_math import ONE, ZERO, exp, jit, sigmoid

#: token ranges per image: programs for the threads and partial sums (fixed count)
TILES = 16
EPS = np.float32(1e-6)   # as the reference's fp32 sum + 1e-6


class Attention(NamedTuple):
    qk: np.ndarray       # (batch, n, 2C): [q | k] before the feature map
    v: np.ndarray        # (batch, H, W, C)
    cos: np.ndarray      # (n, C/2)
    sin: np.ndarray      # (n, C/2)
    lepe_w: np.ndarray   # (kh, kw, C): zeros without LePE
    lepe_wf: np.ndarray  # (kh, kw, C): lepe_w flipped along both axes (v's gradient's taps)
    lepe_b: np.ndarray   # (C,)
    gate: np.ndarray     # (batch, n, C); a 1-element dummy without
    heads: int
    tiles: int
    has_gate: bool
    has_lepe: bool


class Stats(NamedTuple):
    """Per image: kv (heads, d, d) = k~^T v / n, its transpose, and kmean (C,)."""
    kv: np.ndarray
    kvt: np.ndarray
    kmean: np.ndarray


class Scratch(NamedTuple):
    """One token's vectors (C,), per program."""
    q: np.ndarray
    qr: np.ndarray
    k: np.ndarray
    kr: np.ndarray
    a: np.ndarray
    b: np.ndarray
    z: np.ndarray        # (heads,)


class AttnGrads(NamedTuple):
    dy: np.ndarray       # (batch, n, C)
    g: np.ndarray        # (batch, H, W, C): dy * SiLU(gate), read by LePE's input gradient
    dqk: np.ndarray      # (batch, n, 2C)
    dv: np.ndarray       # (batch, H, W, C)
    dgate: np.ndarray    # (batch, n, C); a dummy without gate
    dkv: np.ndarray      # (programs, heads, d, d) partial sums, then (batch, heads, d, d)
    dkvt: np.ndarray     # (batch, heads, d, d): dkv transposed (pass B)
    dkmean: np.ndarray   # (programs, C) partial sums, then (batch, C) (pass B)
    dlepe_w: np.ndarray  # (programs, kh, kw, C)
    dlepe_b: np.ndarray  # (programs, C)


# ----------------------------------------------------------------------------------------
# Per-token pieces (on 1-D rows: views taken outside the channel loops keep them vectorized)
# ----------------------------------------------------------------------------------------

@jit(inline=True)
def _copy(src, out):
    """out[:] = src, as a loop (numba's array assignment checks overlap and may copy)."""
    for c in range(out.shape[0]):
        out[c] = src[c]


@jit(inline=True)
def _features(raw, out):
    """out = ELU(raw) + 1."""
    for c in range(out.shape[0]):
        x = raw[c]
        out[c] = x + ONE if x > ZERO else exp(x)


@jit(inline=True)
def _feature_grad(raw, feature, grad, out):
    """out = grad * ELU'(raw), ELU' = 1 above 0, else ELU(raw) + 1 (= e^raw)."""
    for c in range(out.shape[0]):
        out[c] = grad[c] if raw[c] > ZERO else grad[c] * feature[c]


@jit(inline=True)
def _rope(x, cos, sin, out):
    """out = x with channel pair p rotated by the token's angle (cos, sin: its rows)."""
    for p in range(cos.shape[0]):
        re = x[2 * p]
        im = x[2 * p + 1]
        out[2 * p] = re * cos[p] - im * sin[p]
        out[2 * p + 1] = im * cos[p] + re * sin[p]


@jit(inline=True)
def _rope_transposed(x, cos, sin, out):
    """out += RoPE^T x: the rotation by minus the angle (the gradient of :func:`_rope`)."""
    for p in range(cos.shape[0]):
        re = x[2 * p]
        im = x[2 * p + 1]
        out[2 * p] += re * cos[p] + im * sin[p]
        out[2 * p + 1] += im * cos[p] - re * sin[p]


@jit(inline=True)
def _normaliser(q, kmean, z):
    """z[h] = 1 / (q_h . kmean_h + eps) for the heads of width len(q) / len(z)."""
    d = q.shape[0] // z.shape[0]
    for h in range(z.shape[0]):
        acc = ZERO
        for j in range(h * d, h * d + d):
            acc += q[j] * kmean[j]
        z[h] = ONE / (acc + EPS)


@jit(inline=True)
def _matvec(x, mat, out):
    """out_h = x_h mat_h per head (mat (heads, d, d), rows of x's head h times mat[h]).
    Four rows of mat per pass over out_h: each pass is a load-add-store chain on out_h, so
    adding one row at a time left the loop waiting on that chain (4x as many passes)."""
    heads, d = mat.shape[0], mat.shape[1]
    quads = d - d % 4
    for h in range(heads):
        o = out[h * d:h * d + d]
        xh = x[h * d:h * d + d]
        o[:] = 0
        for j in range(0, quads, 4):
            x0, x1, x2, x3 = xh[j], xh[j + 1], xh[j + 2], xh[j + 3]
            r0, r1, r2, r3 = mat[h, j], mat[h, j + 1], mat[h, j + 2], mat[h, j + 3]
            for e in range(d):
                o[e] += (x0 * r0[e] + x1 * r1[e]) + (x2 * r2[e] + x3 * r3[e])
        for j in range(quads, d):
            xj = xh[j]
            row = mat[h, j]
            for e in range(d):
                o[e] += xj * row[e]


@jit(inline=True)
def _outer_add(x, y, acc):
    """acc_h += x_h^T y_h per head (acc (heads, d, d))."""
    heads, d = acc.shape[0], acc.shape[1]
    for h in range(heads):
        yh = y[h * d:h * d + d]
        for j in range(d):
            xj = x[h * d + j]
            row = acc[h, j]
            for e in range(d):
                row[e] += xj * yh[e]


@jit(inline=True)
def _ungated(qraw, vmap, y, x, cos, sin, kv, kmean, lepe_w, lepe_b, has_lepe, s):
    """The token's output before the gate, into s.a (z applied, + LePE); also s.q (the
    features), s.z, s.qr = RoPE(q) and s.b = q~ kv (before z)."""
    q, qr, a, bb, z = s.q, s.qr, s.a, s.b, s.z
    _features(qraw, q)
    _normaliser(q, kmean, z)
    _rope(q, cos, sin, qr)
    _matvec(qr, kv, bb)
    d = q.shape[0] // z.shape[0]
    for h in range(z.shape[0]):
        zh = z[h]
        for e in range(h * d, h * d + d):
            a[e] = bb[e] * zh
    if has_lepe:
        for c in range(a.shape[0]):
            a[c] += lepe_b[c]
        add_taps(a, vmap, lepe_w, y, x, (lepe_w.shape[0] - 1) // 2, (lepe_w.shape[1] - 1) // 2)


@jit()
def _scratch(channels, heads, f):
    return Scratch(np.zeros(channels, f), np.zeros(channels, f), np.zeros(channels, f),
                   np.zeros(channels, f), np.zeros(channels, f), np.zeros(channels, f),
                   np.zeros(heads, f))


@jit(inline=True)
def _range(att, n, p):
    start, stop = tile_bounds(n, att.tiles, p % att.tiles)
    return p // att.tiles, start, stop


# ----------------------------------------------------------------------------------------
# Forward
# ----------------------------------------------------------------------------------------

@jit()
def _kv_programs(first, step, n_programs, att, kv_part, ksum_part):
    """Pass 1: per (image, token range), the partial sums of k~^T v and of k."""
    qk, v, cos, sin = att.qk, att.v, att.cos, att.sin
    height, width, channels = v.shape[1], v.shape[2], v.shape[3]
    s = _scratch(channels, att.heads, v.dtype)
    k, kr = s.k, s.kr
    for p in range(first, n_programs, step):
        b, start, stop = _range(att, height * width, p)
        kv, ksum = kv_part[p], ksum_part[p]
        kv[:] = 0
        ksum[:] = 0
        for t in range(start, stop):
            _features(qk[b, t, channels:], k)
            for c in range(channels):
                ksum[c] += k[c]
            _rope(k, cos[t], sin[t], kr)
            _outer_add(kr, v[b, t // width, t % width], kv)


@jit()
def _output_programs(first, step, n_programs, att, stats, out):
    """Pass 2: per (image, token range), y = (attn + LePE) * SiLU(gate)."""
    qk, v, cos, sin, gate = att.qk, att.v, att.cos, att.sin, att.gate
    lepe_w, lepe_b = att.lepe_w, att.lepe_b
    height, width, channels = v.shape[1], v.shape[2], v.shape[3]
    s = _scratch(channels, att.heads, v.dtype)
    a = s.a
    for p in range(first, n_programs, step):
        b, start, stop = _range(att, height * width, p)
        kv, kmean, vmap = stats.kv[b], stats.kmean[b], v[b]
        for t in range(start, stop):
            y, x = t // width, t % width
            _ungated(qk[b, t], vmap, y, x, cos[t], sin[t], kv, kmean, lepe_w, lepe_b,
                     att.has_lepe, s)
            o = out[b, y, x]
            if att.has_gate:
                g = gate[b, t]
                for c in range(channels):
                    gv = g[c]
                    o[c] = a[c] * (gv * sigmoid(gv))
            else:
                for c in range(channels):
                    o[c] = a[c]


# ----------------------------------------------------------------------------------------
# Backward
# ----------------------------------------------------------------------------------------

@jit()
def _query_grad_programs(first, step, n_programs, att, stats, grads):
    """Pass A: per (image, token range), the gate's and q's gradients, g = dy SiLU(gate), and
    the partial sums of dkv, dkmean and LePE's weight and bias gradients."""
    qk, v, cos, sin, gate = att.qk, att.v, att.cos, att.sin, att.gate
    lepe_w, lepe_b = att.lepe_w, att.lepe_b
    height, width, channels = v.shape[1], v.shape[2], v.shape[3]
    heads = att.heads
    d = channels // heads
    s = _scratch(channels, heads, v.dtype)
    q, a, bb, z = s.q, s.a, s.b, s.z
    g, dqr = s.k, s.kr
    dq = np.zeros(channels, v.dtype)
    for p in range(first, n_programs, step):
        b, start, stop = _range(att, height * width, p)
        kv, kvt, kmean, vmap = stats.kv[b], stats.kvt[b], stats.kmean[b], v[b]
        dkv, dkm = grads.dkv[p], grads.dkmean[p]
        dlw, dlb = grads.dlepe_w[p], grads.dlepe_b[p]
        dkv[:] = 0
        dkm[:] = 0
        dlw[:] = 0
        dlb[:] = 0
        for t in range(start, stop):
            y, x = t // width, t % width
            _ungated(qk[b, t], vmap, y, x, cos[t], sin[t], kv, kmean, lepe_w, lepe_b,
                     att.has_lepe, s)
            dy = grads.dy[b, t]
            if att.has_gate:                  # g = dy SiLU(gate): the gradient of a
                gt, dg = gate[b, t], grads.dgate[b, t]
                for c in range(channels):
                    gv = gt[c]
                    sg = sigmoid(gv)
                    dg[c] = dy[c] * a[c] * (sg * (ONE + gv * (ONE - sg)))
                    g[c] = dy[c] * (gv * sg)
            else:
                _copy(dy, g)
            if att.has_lepe:
                _copy(g, grads.g[b, y, x])
                for c in range(channels):
                    dlb[c] += g[c]
                add_weight_taps(dlw, vmap, g, y, x, (dlw.shape[0] - 1) // 2,
                                (dlw.shape[1] - 1) // 2)
            # attn_h = (q~_h kv_h) z_h: dz_h = g_h . (q~_h kv_h), then g <- g z
            for h in range(heads):
                zh = z[h]
                dz = ZERO
                for e in range(h * d, h * d + d):
                    dz += g[e] * bb[e]
                    g[e] *= zh
                # z = 1 / (q . kmean + eps): dq = -dz z^2 kmean, dkmean += -dz z^2 q
                w = -dz * zh * zh
                for j in range(h * d, h * d + d):
                    dq[j] = w * kmean[j]
                    dkm[j] += w * q[j]
            _outer_add(s.qr, g, dkv)          # dkv += q~^T (g z)
            _matvec(g, kvt, dqr)               # d(q~) = (g z) kv^T
            _rope_transposed(dqr, cos[t], sin[t], dq)
            _feature_grad(qk[b, t], q, dq, grads.dqk[b, t, :channels])


@jit()
def _key_value_grad_programs(first, step, n_programs, att, stats, grads):
    """Pass B: per (image, token range), k's gradient (dkv through k~, dkmean) and v's (dkv,
    LePE's taps of g at the mirrored neighbours)."""
    qk, v, cos, sin = att.qk, att.v, att.cos, att.sin
    height, width, channels = v.shape[1], v.shape[2], v.shape[3]
    s = _scratch(channels, att.heads, v.dtype)
    k, kr, dk, dkr, dv = s.k, s.kr, s.q, s.a, s.b
    for p in range(first, n_programs, step):
        b, start, stop = _range(att, height * width, p)
        dkv, dkvt, dkmean, gmap = grads.dkv[b], grads.dkvt[b], grads.dkmean[b], grads.g[0]
        if att.has_lepe:
            gmap = grads.g[b]
        for t in range(start, stop):
            y, x = t // width, t % width
            kraw = qk[b, t, channels:]
            vrow = v[b, y, x]
            _features(kraw, k)
            _rope(k, cos[t], sin[t], kr)
            _matvec(vrow, dkvt, dkr)             # d(k~) = v dkv^T
            _copy(dkmean, dk)
            _rope_transposed(dkr, cos[t], sin[t], dk)
            _feature_grad(kraw, k, dk, grads.dqk[b, t, channels:])
            _matvec(kr, dkv, dv)                 # dv = k~ dkv
            if att.has_lepe:
                add_taps(dv, gmap, att.lepe_wf, y, x, att.lepe_wf.shape[0] // 2,
                         att.lepe_wf.shape[1] // 2)   # the mirrored taps: kh - 1 - (kh - 1) // 2
            _copy(dv, grads.dv[b, y, x])


# ----------------------------------------------------------------------------------------
# torch <-> numba
# ----------------------------------------------------------------------------------------

def _attention(qk, v, cos, sin, heads, lepe_w, lepe_b, gate):
    batch, height, width, channels = v.shape
    n = height * width
    f = v.dtype
    has_lepe = lepe_w is not None
    if lepe_w is None:
        lepe_w, lepe_b = torch.zeros(1, 1, channels, dtype=f), torch.zeros(channels, dtype=f)
    else:
        lepe_w = lepe_w.permute(1, 2, 0).contiguous()
        lepe_b = torch.zeros(channels, dtype=f) if lepe_b is None else lepe_b.contiguous()
    return Attention(qk.reshape(batch, n, 2 * channels).numpy(), v.numpy(),
                     cos.reshape(n, -1).contiguous().numpy(),
                     sin.reshape(n, -1).contiguous().numpy(), lepe_w.numpy(),
                     lepe_w.flip(0, 1).contiguous().numpy(), lepe_b.numpy(),
                     (torch.zeros(1, 1, 1, dtype=f) if gate is None else
                      gate.reshape(batch, n, channels)).numpy(),
                     int(heads), min(TILES, n), gate is not None, has_lepe)


class LinearAttentionNumba(torch.autograd.Function):
    """forward(qk, v, cos, sin, heads, lepe_weight, lepe_bias, gate) -> y (batch, H, W, C);
    all tensors contiguous in the compute dtype."""

    @staticmethod
    def forward(ctx, qk, v, cos, sin, heads, lepe_w, lepe_b, gate):
        att = _attention(qk, v, cos, sin, heads, lepe_w, lepe_b, gate)
        batch, height, width, channels = v.shape
        d = channels // heads
        programs = batch * att.tiles
        kv_part = torch.empty(programs, heads, d, d, dtype=v.dtype)
        ksum_part = torch.empty(programs, channels, dtype=v.dtype)
        _run(_kv_programs, programs, att, kv_part.numpy(), ksum_part.numpy())
        n = height * width
        kv = kv_part.view(batch, att.tiles, heads, d, d).sum(1) / n
        kmean = ksum_part.view(batch, att.tiles, channels).sum(1) / n
        stats = Stats(kv.numpy(), kv.transpose(-1, -2).contiguous().numpy(), kmean.numpy())
        out = torch.empty_like(v)
        _run(_output_programs, programs, att, stats, out.numpy())
        ctx.save_for_backward(qk, v, cos, sin, lepe_w, lepe_b, gate, kv, kmean)
        ctx.heads = heads
        return out

    @staticmethod
    def backward(ctx, dy):
        qk, v, cos, sin, lepe_w, lepe_b, gate, kv, kmean = ctx.saved_tensors
        heads = ctx.heads
        att = _attention(qk, v, cos, sin, heads, lepe_w, lepe_b, gate)
        batch, height, width, channels = v.shape
        d, n = channels // heads, height * width
        programs = batch * att.tiles
        f = v.dtype
        dy = dy.contiguous()
        g = torch.empty_like(v) if att.has_lepe else torch.zeros(1, 1, 1, 1, dtype=f)
        dqk = torch.empty_like(qk)
        dv = torch.empty_like(v)
        dgate = torch.empty_like(gate) if gate is not None else torch.zeros(1, 1, 1, dtype=f)
        dkv = torch.empty(programs, heads, d, d, dtype=f)
        dkm = torch.empty(programs, channels, dtype=f)
        lw = att.lepe_w.shape
        dlw = torch.empty(programs, *lw, dtype=f)
        dlb = torch.empty(programs, channels, dtype=f)
        stats = Stats(kv.numpy(), kv.transpose(-1, -2).contiguous().numpy(), kmean.numpy())
        grads = AttnGrads(dy.reshape(batch, n, channels).numpy(), g.numpy(),
                          dqk.reshape(batch, n, 2 * channels).numpy(), dv.numpy(),
                          dgate.reshape(dgate.shape[0], -1, dgate.shape[-1]).numpy(),
                          dkv.numpy(), dkv.numpy(), dkm.numpy(), dlw.numpy(), dlb.numpy())
        _run(_query_grad_programs, programs, att, stats, grads)
        # fixed-order sums of the partials; kv = sum k~^T v / n and kmean = sum k / n
        dkv_sum = dkv.view(batch, att.tiles, heads, d, d).sum(1) / n
        dkm_sum = dkm.view(batch, att.tiles, channels).sum(1) / n
        grads = grads._replace(dkv=dkv_sum.numpy(),
                               dkvt=dkv_sum.transpose(-1, -2).contiguous().numpy(),
                               dkmean=dkm_sum.numpy())
        _run(_key_value_grad_programs, programs, att, stats, grads)
        dlepe_w = dlepe_b = None
        if lepe_w is not None:
            dlepe_w = dlw.view(batch, att.tiles, *lw).sum((0, 1)).permute(2, 0, 1)
            if lepe_b is not None:
                dlepe_b = dlb.view(batch, att.tiles, channels).sum((0, 1))
        return (dqk, dv, None, None, None, dlepe_w, dlepe_b,
                dgate if gate is not None else None)


def linear_attention_numba(qk, v, rope_cos, rope_sin, num_heads, lepe_weight=None,
                           lepe_bias=None, gate=None):
    """:func:`mlla_kernels.linear_attention` on the fused CPU kernels. fp16/bf16 inputs are
    computed in float32 (one cast each) and the output cast back."""
    compute = cpu_compute_dtype(v)

    def prep(t):
        return None if t is None else t.to(compute).contiguous()
    out = LinearAttentionNumba.apply(prep(qk), prep(v), prep(rope_cos), prep(rope_sin),
                                     int(num_heads), prep(lepe_weight), prep(lepe_bias),
                                     prep(gate))
    return out.to(v.dtype)

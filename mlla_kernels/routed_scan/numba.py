"""The routed scan on the CPU: fused numba kernels, forward and recompute-backward.

Every operation is a routed scan (:mod:`mlla_kernels.routes` maps each onto this layout with
views only): u (batch, Ku, DIM, L) with Ku = 1 (shared by the routes) or K; delta
(batch, K, DIM, L); A (K, DIM, N); B, C (batch, K, G, N, L); D, delta_bias (K, DIM); z
(batch, DIM, L), a gate shared by the routes; ``order`` (K, L) int64, the position route k
visits at step t (:func:`mlla_kernels.route_table`). Route k's output
y_k = (<C, h_k> + D_k u) * silu(z) lands at the positions it visits: summed over the routes
into y (batch, DIM, L) (``merge``), or kept apart in y (batch, K, DIM, L).

**One program** owns one (batch, group, block of up to ``BLOCK_D`` channels) and runs every route
over it, so routes that share u, z or the merged y never race. It walks each route in chunks of
``CHUNK`` steps: looks up the chunk's positions in the order table, gathers u, delta, z, B and C
there (any strides; a channel-contiguous layout is read with vector loads, a time-contiguous one
is transposed on the fly), applies bias + softplus, then runs the recurrence with the channels
as the vector lanes, ``h[n, :] = exp(delta * A[n, :]) * h[n, :] + delta * u * B[n]`` and
``y += h[n, :] * C[n]``, and writes (merged: adds, after the first route) y once. Nothing of
size (batch, DIM, L, N) is ever stored, and no routed copy of any tensor is made.

**Backward by recomputation** (as mamba-ssm's CUDA kernel): the forward saves only the state at
the start of every chunk (DIM * L * N / CHUNK floats); the backward walks the chunks last to
first, recomputes the chunk's states from its saved start, then runs the adjoint
``g_t = C_t dy_t + exp(delta_{t+1} A) g_{t+1}`` backwards through the chunk and produces the
gradients of u, delta, A, B, C, D, z and delta_bias in the same pass.

State and accumulation are in the compute dtype (fp32 for fp16/bf16/fp32 inputs, which are read
as fp32; float64 with libm math, for verification), see :mod:`.numba_math`.

Threads: programs run on as many threads as torch uses (``torch.get_num_threads()``): the
compiled code releases the GIL and a small pool of Python threads runs one share each (no
second OpenMP runtime beside torch's, nothing to go wrong after a fork). A program's
arithmetic does not depend on the thread count; only the channel-block width is chosen to
balance the threads (:func:`plan_blocks`), which regroups the sums over channels of dB and dC
(fp32 rounding).
"""
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple, Tuple

import numpy as np
import torch

from ..numba_common import cpu_compute_dtype
from .numba_math import (LOG2E_64, ONE, ZERO, exp, exp2, jit, log1p_unit, prefetch, sigmoid,
                         softplus)

# the float32 math, under the names the tests and the old ``numba_utils`` module used
_softplus, _sigmoid = softplus, sigmoid
__all__ = ['routed_scan', 'warm_up', 'exp', 'exp2', 'log1p_unit']

#: Most channels per program (the buffers' width): the vector lanes of the hot loops. The
#: block actually used (one of BLOCK_CHOICES) is passed at run time: a compile-time trip count
#: lets LLVM unroll the channel loops and then vectorize across time with gathers instead.
BLOCK_D = 64
#: Time steps per chunk: the tile gathered at once, and the spacing of the states the forward
#: saves for the backward (which keeps CHUNK x N x BLOCK_D states and decays of one chunk).
CHUNK = 32


# ----------------------------------------------------------------------------------------
# The structures every program receives (numba passes named tuples by value)
# ----------------------------------------------------------------------------------------

class Strided(NamedTuple):
    """A tensor as a 1-D view of its storage and its strides (0 along a shared size-1 dim)."""
    data: np.ndarray
    strides: Tuple[int, ...]


class Problem(NamedTuple):
    """The scan's inputs, read by the forward and read again by the backward."""
    u: Strided           # (batch, Ku, DIM, L)
    delta: Strided       # (batch, K, DIM, L)
    B: Strided           # (batch, K, G, N, L)
    C: Strided           # (batch, K, G, N, L)
    z: Strided           # (batch, DIM, L); a 1-element dummy without a gate
    A: np.ndarray        # (K, DIM, N) in the compute dtype
    D: np.ndarray        # (K, DIM), zeros without D
    bias: np.ndarray     # (K, DIM), zeros without delta_bias
    order: np.ndarray    # (K, L) int64: the position route k visits at step t


class Plan(NamedTuple):
    """Sizes, the program grid and the options of one call."""
    batch: int
    routes: int
    dim: int
    length: int
    n_state: int
    groups: int
    n_chunks: int
    blocks: int          # channel blocks per group
    block: int           # channels per block (<= BLOCK_D)
    has_z: bool
    softplus: bool
    shared_u: bool       # one u for all routes: du accumulates over them
    merged: bool         # one y for all routes: y (and dy) shared, y accumulates


class ForwardOut(NamedTuple):
    y: Strided           # (batch, Ky, DIM, L), Ky = 1 when merged
    states: np.ndarray   # (batch, K, n_chunks, N, DIM): the state at each chunk start
    last: np.ndarray     # (batch, K, DIM, N)
    save_states: bool


class Adjoint(NamedTuple):
    """What the backward reads beyond the problem."""
    dy: Strided          # like y
    states: np.ndarray
    dlast: np.ndarray    # (batch, K, DIM, N), or a dummy
    has_dlast: bool


class Grads(NamedTuple):
    du: Strided
    ddelta: Strided
    dz: Strided
    dA: np.ndarray       # (batch, K, DIM, N) float64, summed over the batch afterwards
    dD: np.ndarray       # (batch, K, DIM) float64
    dbias: np.ndarray    # (batch, K, DIM) float64
    dB: np.ndarray       # (blocks, batch, K, G, L, N), summed over the blocks afterwards
    dC: np.ndarray


class RouteParams(NamedTuple):
    """One route's parameters for the program's channels (padded channels stay 0)."""
    a: np.ndarray        # (N, BLOCK_D) A
    a2: np.ndarray       # (N, BLOCK_D) A * log2(e): exp(dt A) = exp2(dt a2)
    skip: np.ndarray     # (BLOCK_D,) D
    bias: np.ndarray     # (BLOCK_D,) delta_bias


class Tiles(NamedTuple):
    """One chunk of a route, (CHUNK, BLOCK_D) per channel and (CHUNK, N) per state."""
    u: np.ndarray
    dt: np.ndarray       # softplus(delta + bias)
    dtu: np.ndarray      # dt * u
    sig: np.ndarray      # softplus'(delta + bias) (backward)
    z: np.ndarray        # the gate; the backward turns it into silu'(z)
    y: np.ndarray        # the output before the gate
    b: np.ndarray        # (CHUNK, N)
    c: np.ndarray        # (CHUNK, N)


class Bases(NamedTuple):
    """Offsets of (b, k, group, first channel) in each input's storage."""
    u: int
    delta: int
    B: int
    C: int
    z: int


class AdjointTiles(NamedTuple):
    """The backward's scratch: recomputed states and its per-chunk gradients."""
    hs: np.ndarray       # (CHUNK + 1, N, BLOCK_D): hs[0] the chunk's start, hs[t + 1] after t
    decays: np.ndarray   # (CHUNK, N, BLOCK_D)
    adj: np.ndarray      # (N, BLOCK_D) dL/dh carried backwards (times a_{t+1})
    da: np.ndarray       # (N, BLOCK_D) this chunk's dA
    dy: np.ndarray       # (CHUNK, BLOCK_D) dy, then dy * silu(z)
    dz: np.ndarray
    gb: np.ndarray       # sum_n dL/dh_t B_t: dL/d(dt u)
    dta: np.ndarray      # sum_n dL/d(dt A) A: dL/d(dt) through the decay
    du: np.ndarray
    ddt: np.ndarray
    db: np.ndarray       # (CHUNK, N)
    dc: np.ndarray       # (CHUNK, N)
    sums: np.ndarray     # (2, BLOCK_D): the chunk's sums of ddelta and of dy' u


class Accumulators(NamedTuple):
    """One route's parameter gradients over all chunks, in float64."""
    dA: np.ndarray       # (N, BLOCK_D)
    dD: np.ndarray       # (BLOCK_D,)
    dbias: np.ndarray    # (BLOCK_D,)


# ----------------------------------------------------------------------------------------
# Pieces shared by the forward and the backward
# ----------------------------------------------------------------------------------------

@jit(inline=True)
def _gather(flat, base, s_d, s_l, pos, nt, nj, out):
    """out[t, j] = flat[base + j*s_d + pos[t]*s_l] for t < nt, j < nj: one chunk of u, delta,
    z or dy (j a channel) or of B or C (j a state)."""
    if s_d == 1:
        for t in range(nt):
            row = flat[base + pos[t] * s_l:]
            for j in range(nj):
                out[t, j] = row[j]
    else:
        for j in range(nj):
            col = flat[base + j * s_d:]
            for t in range(nt):
                out[t, j] = col[pos[t] * s_l]


@jit(inline=True)
def _scatter(flat, base, s_d, s_l, pos, nt, nj, tile, accumulate):
    """flat[base + j*s_d + pos[t]*s_l] (+)= tile[t, j]."""
    if s_d == 1:
        for t in range(nt):
            row = flat[base + pos[t] * s_l:]
            if accumulate:
                for j in range(nj):
                    row[j] += tile[t, j]
            else:
                for j in range(nj):
                    row[j] = tile[t, j]
    else:
        for j in range(nj):
            col = flat[base + j * s_d:]
            if accumulate:
                for t in range(nt):
                    col[pos[t] * s_l] += tile[t, j]
            else:
                for t in range(nt):
                    col[pos[t] * s_l] = tile[t, j]


@jit(inline=True)
def _coords(plan, p):
    """Program p -> (b, g, channel block, first channel, channel count)."""
    per_group = plan.dim // plan.groups
    b = p // (plan.groups * plan.blocks)
    rest = p % (plan.groups * plan.blocks)
    g = rest // plan.blocks
    blk = rest % plan.blocks
    d0 = g * per_group + blk * plan.block
    return b, g, blk, d0, min(plan.block, per_group - blk * plan.block)


@jit(inline=True)
def _bases(prob, b, k, g, d0):
    return Bases(b * prob.u.strides[0] + k * prob.u.strides[1] + d0 * prob.u.strides[2],
                 b * prob.delta.strides[0] + k * prob.delta.strides[1]
                 + d0 * prob.delta.strides[2],
                 b * prob.B.strides[0] + k * prob.B.strides[1] + g * prob.B.strides[2],
                 b * prob.C.strides[0] + k * prob.C.strides[1] + g * prob.C.strides[2],
                 b * prob.z.strides[0] + d0 * prob.z.strides[1])


@jit(inline=True)
def _channel_offset(t, b, k, d0):
    """Offset of (b, route k, channel d0) in a (batch, K, DIM, L) Strided."""
    s = t.strides
    return b * s[0] + k * s[1] + d0 * s[2]


@jit()
def _route_params(n_state, f):
    return RouteParams(np.zeros((n_state, BLOCK_D), f), np.zeros((n_state, BLOCK_D), f),
                       np.zeros(BLOCK_D, f), np.zeros(BLOCK_D, f))


@jit()
def _load_route_params(prob, k, d0, nj, params):
    for n in range(prob.A.shape[2]):
        for j in range(nj):
            params.a[n, j] = prob.A[k, d0 + j, n]
            params.a2[n, j] = prob.A[k, d0 + j, n] * LOG2E_64
    for j in range(nj):
        params.skip[j] = prob.D[k, d0 + j]
        params.bias[j] = prob.bias[k, d0 + j]


@jit()
def _tiles(n_state, f):
    def tile():
        return np.zeros((CHUNK, BLOCK_D), f)
    return Tiles(tile(), tile(), tile(), tile(), tile(), tile(), np.zeros((CHUNK, n_state), f),
                 np.zeros((CHUNK, n_state), f))


@jit(inline=True)
def _prepare_delta(dt, bias_row, nt, nj, softplus, sig, with_grad):
    """dt = softplus(dt + bias) (or dt + bias); with_grad: sig = softplus'(dt + bias)."""
    for t in range(nt):
        for j in range(nj):
            x = dt[t, j] + bias_row[j]
            if softplus:
                e = exp(-abs(x))                      # shared by softplus and its derivative
                if with_grad:
                    r = ONE / (ONE + e)
                    sig[t, j] = r if x >= ZERO else e * r
                x = max(x, ZERO) + log1p_unit(e)
            dt[t, j] = x


@jit(inline=True)
def _load_chunk(prob, plan, base, pos, nt, nj, params, tiles, with_grad):
    """Gather one chunk of the route at positions ``pos`` and prepare it: dt, dt*u, B, C, z,
    and y = D u (the recurrence adds <C, h>)."""
    u, delta = prob.u, prob.delta
    _gather(u.data, base.u, u.strides[2], u.strides[3], pos, nt, nj, tiles.u)
    _gather(delta.data, base.delta, delta.strides[2], delta.strides[3], pos, nt, nj, tiles.dt)
    _prepare_delta(tiles.dt, params.bias, nt, nj, plan.softplus, tiles.sig, with_grad)
    bd = plan.block
    ut, dtt, dtu, yt, skip = tiles.u, tiles.dt, tiles.dtu, tiles.y, params.skip
    for t in range(nt):          # two loops with one store each: both vectorize
        for j in range(bd):
            dtu[t, j] = dtt[t, j] * ut[t, j]
    for t in range(nt):
        for j in range(bd):
            yt[t, j] = skip[j] * ut[t, j]
    n_state = plan.n_state
    _gather(prob.B.data, base.B, prob.B.strides[3], prob.B.strides[4], pos, nt, n_state, tiles.b)
    _gather(prob.C.data, base.C, prob.C.strides[3], prob.C.strides[4], pos, nt, n_state, tiles.c)
    if plan.has_z:
        _gather(prob.z.data, base.z, prob.z.strides[1], prob.z.strides[2], pos, nt, nj, tiles.z)


# ----------------------------------------------------------------------------------------
# Forward
# ----------------------------------------------------------------------------------------

@jit(inline=True)
def _recurrence(h, a2, tiles, nt, bd, n_state):
    """h_t = exp2(dt a2) h_{t-1} + dt u B_t and y_t += <C_t, h_t>, step by step. Padded
    channels have dt = u = a2 = 0, so their h stays 0."""
    yt, dtt, dtu, bt, ct = tiles.y, tiles.dt, tiles.dtu, tiles.b, tiles.c
    for t in range(nt):
        for n in range(n_state):
            bn = bt[t, n]
            cn = ct[t, n]
            for j in range(bd):
                hv = exp2(dtt[t, j] * a2[n, j]) * h[n, j] + dtu[t, j] * bn
                h[n, j] = hv
                yt[t, j] += hv * cn


@jit(inline=True)
def _gate(yt, zt, nt, nj):
    """yt *= silu(zt)."""
    for t in range(nt):
        for j in range(nj):
            zv = zt[t, j]
            yt[t, j] *= zv * sigmoid(zv)


# ----------------------------------------------------------------------------------------
# N = 1 (VMamba): one fused pass per step
# ----------------------------------------------------------------------------------------
#
# With one state per channel the tiled path's per-step passes (gather, softplus, dt*u, D*u,
# recurrence, scatter: each a short loop over the block) cost more than the update itself.
# For channel-contiguous tensors (the layout VMamba produces) and no gate, the programs below
# read each step's row of u and delta once, run softplus, decay, state and output in one loop
# over the channels, and write (or add to) y's row; the backward recomputes the chunk's
# states into one small tile, keeping each step's dt, decay and softplus' beside them, then
# runs the adjoint with every gradient of the step in one loop (no transcendental left in
# it). Same math as the tiled path (same functions, same order).

@jit(inline=True)
def _fused_n1(prob, plan, rows_y):
    """The fused N = 1 programs apply: one state, no gate, channels contiguous in u, delta
    and the y-like tensors ``rows_y`` (y forward; dy, du, ddelta backward)."""
    ok = plan.n_state == 1 and not plan.has_z and prob.u.strides[2] == 1 \
        and prob.delta.strides[2] == 1
    for s_d in rows_y:
        ok = ok and s_d == 1
    return ok


@jit(inline=True)
def _prefetch_row(flat, offset, nj):
    """Prefetch the cache lines of flat[offset:offset + nj]."""
    for j in range(0, nj, 16):
        prefetch(flat, offset + j)
    prefetch(flat, offset + nj - 1)


@jit(inline=True)
def _forward_step_n1(ur, dr, yr, h, a2, skip, bias, bn, cn, nj, softplus, accumulate):
    """One step of every channel: softplus, decay, state, y (``softplus``, ``accumulate``:
    literals at the call, so that the loop has no branch)."""
    for j in range(nj):
        x = dr[j] + bias[j]
        if softplus:
            x = max(x, ZERO) + log1p_unit(exp(-abs(x)))
        uv = ur[j]
        hv = exp2(x * a2[j]) * h[j] + (x * uv) * bn
        h[j] = hv
        yv = skip[j] * uv + hv * cn
        if accumulate:
            yr[j] += yv
        else:
            yr[j] = yv


@jit()
def _forward_route_n1(b, k, g, d0, nj, prob, plan, out, a2, skip, bias, h):
    u, delta, y = prob.u, prob.delta, out.y
    base = _bases(prob, b, k, g, d0)
    y_base = _channel_offset(y, b, k, d0)
    s_ul, s_dl, s_yl = u.strides[3], delta.strides[3], y.strides[3]
    s_bl, s_cl = prob.B.strides[4], prob.C.strides[4]
    accumulate = plan.merged and k > 0
    for j in range(nj):
        h[j] = 0
    for c in range(plan.n_chunks):
        t0 = c * CHUNK
        nt = min(CHUNK, plan.length - t0)
        if out.save_states:
            for j in range(nj):
                out.states[b, k, c, 0, d0 + j] = h[j]
        for t in range(t0, t0 + nt):
            if t + CHUNK < plan.length:     # the rows of a chunk ahead
                q = prob.order[k, t + CHUNK]
                _prefetch_row(u.data, base.u + q * s_ul, nj)
                _prefetch_row(delta.data, base.delta + q * s_dl, nj)
                _prefetch_row(y.data, y_base + q * s_yl, nj)
            q = prob.order[k, t]
            ur = u.data[base.u + q * s_ul:]
            dr = delta.data[base.delta + q * s_dl:]
            yr = y.data[y_base + q * s_yl:]
            bn = prob.B.data[base.B + q * s_bl]
            cn = prob.C.data[base.C + q * s_cl]
            if plan.softplus:
                if accumulate:
                    _forward_step_n1(ur, dr, yr, h, a2, skip, bias, bn, cn, nj, True, True)
                else:
                    _forward_step_n1(ur, dr, yr, h, a2, skip, bias, bn, cn, nj, True, False)
            elif accumulate:
                _forward_step_n1(ur, dr, yr, h, a2, skip, bias, bn, cn, nj, False, True)
            else:
                _forward_step_n1(ur, dr, yr, h, a2, skip, bias, bn, cn, nj, False, False)
    for j in range(nj):
        out.last[b, k, d0 + j, 0] = h[j]


@jit()
def _forward_program(p, prob, plan, out):
    b, g, blk, d0, nj = _coords(plan, p)
    f = out.last.dtype
    n_state = plan.n_state
    params = _route_params(n_state, f)
    tiles = _tiles(n_state, f)
    h = np.zeros((n_state, BLOCK_D), f)
    y = out.y
    fused = _fused_n1(prob, plan, (y.strides[2],))
    for k in range(plan.routes):
        _load_route_params(prob, k, d0, nj, params)
        if fused:
            _forward_route_n1(b, k, g, d0, nj, prob, plan, out, params.a2[0], params.skip,
                              params.bias, h[0])
            continue
        h[:] = 0
        base = _bases(prob, b, k, g, d0)
        y_base = _channel_offset(y, b, k, d0)
        for c in range(plan.n_chunks):
            t0 = c * CHUNK
            nt = min(CHUNK, plan.length - t0)
            if out.save_states:
                for n in range(n_state):
                    for j in range(nj):
                        out.states[b, k, c, n, d0 + j] = h[n, j]
            pos = prob.order[k, t0:t0 + nt]
            _load_chunk(prob, plan, base, pos, nt, nj, params, tiles, False)
            _recurrence(h, params.a2, tiles, nt, plan.block, n_state)
            if plan.has_z:
                _gate(tiles.y, tiles.z, nt, nj)
            _scatter(y.data, y_base, y.strides[2], y.strides[3], pos, nt, nj, tiles.y,
                     plan.merged and k > 0)
        for n in range(n_state):
            for j in range(nj):
                out.last[b, k, d0 + j, n] = h[n, j]


@jit()
def _forward_programs(first, step, n_programs, prob, plan, out):
    """Programs first, first + step, ... (one thread's share; the GIL is released)."""
    for p in range(first, n_programs, step):
        _forward_program(p, prob, plan, out)


# ----------------------------------------------------------------------------------------
# Backward
# ----------------------------------------------------------------------------------------

@jit()
def _adjoint_tiles(n_state, f):
    def tile():
        return np.zeros((CHUNK, BLOCK_D), f)
    return AdjointTiles(np.zeros((CHUNK + 1, n_state, BLOCK_D), f),
                        np.zeros((CHUNK, n_state, BLOCK_D), f),
                        np.zeros((n_state, BLOCK_D), f), np.zeros((n_state, BLOCK_D), f),
                        tile(), tile(), tile(), tile(), tile(), tile(),
                        np.zeros((CHUNK, n_state), f), np.zeros((CHUNK, n_state), f),
                        np.zeros((2, BLOCK_D), f))


@jit()
def _gate_grads(zt, dyt, dzt, nt, nj):
    """Backward of y = ypre * silu(z): zt <- silu'(z), dzt <- dy, dyt <- dy * silu(z)."""
    for t in range(nt):
        for j in range(nj):
            zv = zt[t, j]
            s = sigmoid(zv)
            zt[t, j] = s * (ONE + zv * (ONE - s))
            dzt[t, j] = dyt[t, j]
            dyt[t, j] *= zv * s


@jit(inline=True)
def _recompute(tiles, work, a2, nt, bd, n_state):
    """The chunk's decays and states from its start state (work.hs[0]); with them,
    dC_t = sum_j h_t dy'_t, and tiles.y gains sum_n C_t h_t (the output before the gate)."""
    dtt, dtu, dyt, yt, bt, ct = tiles.dt, tiles.dtu, work.dy, tiles.y, tiles.b, tiles.c
    hs, decays, dct = work.hs, work.decays, work.dc
    for t in range(nt):
        dtrow = dtt[t]
        dturow = dtu[t]
        dyrow = dyt[t]
        yrow = yt[t]
        for n in range(n_state):
            bn = bt[t, n]
            cn = ct[t, n]
            prev = hs[t, n]
            arow = a2[n]
            drow = decays[t, n]
            hrow = hs[t + 1, n]
            acc = ZERO
            for j in range(bd):
                a = exp2(dtrow[j] * arow[j])
                hv = a * prev[j] + dturow[j] * bn
                drow[j] = a
                hrow[j] = hv
                acc += hv * dyrow[j]
                yrow[j] += hv * cn
            dct[t, n] = acc


@jit(inline=True)
def _adjoint(tiles, work, a, nt, bd, n_state):
    """The adjoint backwards through the chunk: dB_t, dL/d(dt u), dL/d(dt) via the decay, and
    this chunk's dA; work.adj carries dL/dh into the chunk before."""
    work.da[:] = 0
    work.gb[:nt] = 0
    work.dta[:nt] = 0
    dyt, dtt, dtu, gbt, dtat, bt, ct = (work.dy, tiles.dt, tiles.dtu, work.gb, work.dta, tiles.b,
                                        tiles.c)
    hs, decays, adj, da, dbt = work.hs, work.decays, work.adj, work.da, work.db
    for t in range(nt - 1, -1, -1):
        dyrow = dyt[t]
        dtrow = dtt[t]
        dturow = dtu[t]
        gb = gbt[t]
        dta = dtat[t]
        for n in range(n_state):
            bn = bt[t, n]
            cn = ct[t, n]
            prev = hs[t, n]
            drow = decays[t, n]
            arow = a[n]
            grow = adj[n]
            darow = da[n]
            acc = ZERO
            for j in range(bd):
                gh = grow[j] + cn * dyrow[j]           # dL/dh_t
                w = gh * drow[j] * prev[j]             # dL/d(dt A) at (t, n, j)
                darow[j] += w * dtrow[j]
                dta[j] += w * arow[j]
                gb[j] += gh * bn
                acc += gh * dturow[j]
                grow[j] = drow[j] * gh
            dbt[t, n] = acc


@jit(inline=True)
def _input_grads(tiles, work, skip, nt, nj, softplus):
    """Per step: du = gb dt + D dy', ddelta = (gb u + dta) softplus'; and the chunk's sums of
    ddelta (the bias gradient) and of dy' u (D's)."""
    sums_bias = work.sums[0]
    sums_skip = work.sums[1]
    sums_bias[:nj] = 0
    sums_skip[:nj] = 0
    for t in range(nt):
        for j in range(nj):
            gb = work.gb[t, j]
            dyv = work.dy[t, j]
            work.du[t, j] = gb * tiles.dt[t, j] + skip[j] * dyv
            dd = gb * tiles.u[t, j] + work.dta[t, j]
            if softplus:
                dd *= tiles.sig[t, j]
            work.ddt[t, j] = dd
            sums_bias[j] += dd
            sums_skip[j] += dyv * tiles.u[t, j]


@jit(inline=True)
def _accumulate(acc, work, nj, n_state):
    for j in range(nj):
        acc.dbias[j] += work.sums[0, j]
        acc.dD[j] += work.sums[1, j]
    for n in range(n_state):
        for j in range(nj):
            acc.dA[n, j] += work.da[n, j]


@jit(inline=True)
def _write_chunk_grads(grads, plan, b, k, g, d0, blk, pos, nt, nj, tiles, work):
    """Scatter the chunk's du, ddelta, dz to the positions it visited; dB, dC per block."""
    if plan.has_z:
        for t in range(nt):
            for j in range(nj):
                work.dz[t, j] = work.dz[t, j] * tiles.y[t, j] * tiles.z[t, j]
        dz = grads.dz
        _scatter(dz.data, b * dz.strides[0] + d0 * dz.strides[1], dz.strides[1], dz.strides[2],
                 pos, nt, nj, work.dz, k > 0)
    du, ddt = grads.du, grads.ddelta
    _scatter(du.data, _channel_offset(du, b, k, d0), du.strides[2], du.strides[3], pos, nt, nj,
             work.du, plan.shared_u and k > 0)
    _scatter(ddt.data, _channel_offset(ddt, b, k, d0), ddt.strides[2], ddt.strides[3], pos, nt,
             nj, work.ddt, False)
    for t in range(nt):
        for n in range(plan.n_state):
            grads.dB[blk, b, k, g, pos[t], n] = work.db[t, n]
            grads.dC[blk, b, k, g, pos[t], n] = work.dc[t, n]


@jit()
def _backward_route(p, k, prob, plan, adjoint, grads, params, tiles, work, acc):
    b, g, blk, d0, nj = _coords(plan, p)
    n_state = plan.n_state
    work.adj[:] = 0
    if adjoint.has_dlast:
        for n in range(n_state):
            for j in range(nj):
                work.adj[n, j] = adjoint.dlast[b, k, d0 + j, n]
    acc.dA[:] = 0
    acc.dD[:] = 0
    acc.dbias[:] = 0
    base = _bases(prob, b, k, g, d0)
    dy = adjoint.dy
    dy_base = _channel_offset(dy, b, k, d0)
    for c in range(plan.n_chunks - 1, -1, -1):
        t0 = c * CHUNK
        nt = min(CHUNK, plan.length - t0)
        pos = prob.order[k, t0:t0 + nt]
        _load_chunk(prob, plan, base, pos, nt, nj, params, tiles, True)
        _gather(dy.data, dy_base, dy.strides[2], dy.strides[3], pos, nt, nj, work.dy)
        if plan.has_z:   # tiles.z: silu'(z), work.dz: dy, work.dy: dy silu(z)
            _gate_grads(tiles.z, work.dy, work.dz, nt, nj)
        for n in range(n_state):
            for j in range(nj):
                work.hs[0, n, j] = adjoint.states[b, k, c, n, d0 + j]
        _recompute(tiles, work, params.a2, nt, plan.block, n_state)
        _adjoint(tiles, work, params.a, nt, plan.block, n_state)
        _input_grads(tiles, work, params.skip, nt, nj, plan.softplus)
        _accumulate(acc, work, nj, n_state)
        _write_chunk_grads(grads, plan, b, k, g, d0, blk, pos, nt, nj, tiles, work)
    for j in range(nj):
        for n in range(n_state):
            grads.dA[b, k, d0 + j, n] = acc.dA[n, j]
        grads.dD[b, k, d0 + j] = acc.dD[j]
        grads.dbias[b, k, d0 + j] = acc.dbias[j]


# The fused N = 1 backward's scratch lives in two flat float arrays, each region at a constant
# offset: ``tile`` holds the chunk's per-step rows (states, dt, decay, softplus', and the
# step's du and ddelta before they are copied out), ``state`` the per-channel rows (the
# carried adjoint, the chunk's sums, A, D). LLVM then sees that the step loops' stores into
# one array cannot overlap its loads from that array (constant distances), and the run-time
# overlap checks left (between the two arrays and the input rows) are few enough for it to
# vectorize the loops; with one array per region the checks were too many and the loops ran
# scalar. Offsets are unsigned: numba wraps a signed index that may be negative (a select
# per access), which hides the consecutive addresses. A pad of one cache line between
# regions keeps equal-index accesses off the same 4 KiB offset.
_PAD = 16
_U = np.uint64
_ROWS = CHUNK * BLOCK_D + _PAD
TILE_HS = _U(0)                                    # CHUNK + 1 rows: the start, after step t
TILE_DT = _U((CHUNK + 1) * BLOCK_D + _PAD)         # dt = softplus(delta + bias)
TILE_DEC = _U(int(TILE_DT) + _ROWS)                # exp(dt A)
TILE_SIG = _U(int(TILE_DEC) + _ROWS)               # softplus'(delta + bias)
TILE_DU = _U(int(TILE_SIG) + _ROWS)                # the step's du, then copied out
TILE_DD = _U(int(TILE_DU) + _ROWS)                 # the step's ddelta, then copied out
TILE_SIZE = int(TILE_DD) + _ROWS
STATE_ADJ = _U(0)                                  # dL/dh carried (times the decay)
STATE_SDA = _U(BLOCK_D + _PAD)                     # the chunk's dA sum
STATE_SDB = _U(2 * (BLOCK_D + _PAD))               # ... ddelta (delta_bias) sum
STATE_SDD = _U(3 * (BLOCK_D + _PAD))               # ... dy u (D) sum
STATE_A = _U(4 * (BLOCK_D + _PAD))                 # the route's A
STATE_SKIP = _U(5 * (BLOCK_D + _PAD))              # the route's D
STATE_DY = _U(6 * (BLOCK_D + _PAD))                # a step's dy, gathered
STATE_SIZE = 7 * (BLOCK_D + _PAD)


@jit(inline=True)
def _recompute_step_n1(ur, dr, tile, o, a2, bias, bn, nj, softplus):
    """Step t's state from the one before (as the forward; o = t * BLOCK_D and nj unsigned),
    keeping the step's dt, decay and softplus' for the adjoint: the transcendental half of
    its work."""
    for j in range(nj):
        x = dr[j] + bias[j]
        if softplus:
            e = exp(-abs(x))
            r = ONE / (ONE + e)
            tile[TILE_SIG + o + j] = r if x >= ZERO else e * r
            x = max(x, ZERO) + log1p_unit(e)
        dec = exp2(x * a2[j])
        tile[TILE_DT + o + j] = x
        tile[TILE_DEC + o + j] = dec
        tile[TILE_HS + _U(BLOCK_D) + o + j] = dec * tile[TILE_HS + o + j] + (x * ur[j]) * bn


@jit(inline=True)
def _adjoint_step_n1(u, ou, dy, ody, tile, state, o, bn, cn, nj, softplus):
    """The adjoint through step t and all its gradients; returns (dB_t, dC_t). The step's
    rows of u and dy start at the unsigned offsets ou and ody of their flat arrays, its tile
    rows at o = t * BLOCK_D (dt, decay and softplus' from the recompute pass; du and ddelta
    written there)."""
    acc_b = ZERO
    acc_c = ZERO
    for j in range(nj):
        x = tile[TILE_DT + o + j]
        dec = tile[TILE_DEC + o + j]
        dyv = dy[ody + j]
        uv = u[ou + j]
        acc_c += tile[TILE_HS + _U(BLOCK_D) + o + j] * dyv
        gh = state[STATE_ADJ + j] + cn * dyv            # dL/dh_t
        wd = gh * dec * tile[TILE_HS + o + j]           # dL/d(dt A)
        state[STATE_SDA + j] += wd * x
        gb = gh * bn                                    # dL/d(dt u)
        acc_b += gh * (x * uv)
        state[STATE_ADJ + j] = dec * gh
        tile[TILE_DU + o + j] = gb * x + state[STATE_SKIP + j] * dyv
        dd = gb * uv + wd * state[STATE_A + j]
        if softplus:
            dd *= tile[TILE_SIG + o + j]
        tile[TILE_DD + o + j] = dd
        state[STATE_SDB + j] += dd
        state[STATE_SDD + j] += dyv * uv
    return acc_b, acc_c


@jit(inline=True)
def _copy_out_step_n1(tile, o, du, odu, ddelta, odd, nj, accumulate):
    """Step t's du (added where routes share u) and ddelta from the tile to their rows."""
    for j in range(nj):
        if accumulate:
            du[odu + j] += tile[TILE_DU + o + j]
        else:
            du[odu + j] = tile[TILE_DU + o + j]
        ddelta[odd + j] = tile[TILE_DD + o + j]


@jit()
def _backward_route_n1(p, k, prob, plan, adjoint, grads, params, tile, state, acc):
    b, g, blk, d0, nj = _coords(plan, p)
    u, delta, dy, du, ddt = prob.u, prob.delta, adjoint.dy, grads.du, grads.ddelta
    base = _bases(prob, b, k, g, d0)
    dy_base = _channel_offset(dy, b, k, d0)
    du_base = _channel_offset(du, b, k, d0)
    ddt_base = _channel_offset(ddt, b, k, d0)
    s_ul, s_dl, s_yd, s_yl = u.strides[3], delta.strides[3], dy.strides[2], dy.strides[3]
    s_gl, s_ddl = du.strides[3], ddt.strides[3]
    s_bl, s_cl = prob.B.strides[4], prob.C.strides[4]
    a2, bias = params.a2[0], params.bias
    acc_du = plan.shared_u and k > 0
    unj = _U(nj)
    rows_desc = np.empty(CHUNK, np.int64)
    for j in range(nj):
        state[STATE_ADJ + j] = adjoint.dlast[b, k, d0 + j, 0] if adjoint.has_dlast else ZERO
        state[STATE_A + j] = params.a[0, j]
        state[STATE_SKIP + j] = params.skip[j]
        acc.dA[0, j] = 0
        acc.dD[j] = 0
        acc.dbias[j] = 0
    for c in range(plan.n_chunks - 1, -1, -1):
        t0 = c * CHUNK
        nt = min(CHUNK, plan.length - t0)
        for j in range(nj):
            tile[TILE_HS + j] = adjoint.states[b, k, c, 0, d0 + j]
        for t in range(nt):     # recompute the chunk's states; prefetch the chunk before's rows
            if c > 0:
                q = prob.order[k, t0 - CHUNK + t]
                _prefetch_row(u.data, base.u + q * s_ul, nj)
                _prefetch_row(delta.data, base.delta + q * s_dl, nj)
            q = prob.order[k, t0 + t]
            if s_yd == 1:
                _prefetch_row(dy.data, dy_base + q * s_yl, nj)
            _prefetch_row(du.data, du_base + q * s_gl, nj)
            _prefetch_row(ddt.data, ddt_base + q * s_ddl, nj)
            ur = u.data[base.u + q * s_ul:]
            dr = delta.data[base.delta + q * s_dl:]
            bn = prob.B.data[base.B + q * s_bl]
            if plan.softplus:
                _recompute_step_n1(ur, dr, tile, _U(t * BLOCK_D), a2, bias, bn, unj, True)
            else:
                _recompute_step_n1(ur, dr, tile, _U(t * BLOCK_D), a2, bias, bn, unj, False)
        for j in range(nj):
            state[STATE_SDA + j] = 0
            state[STATE_SDB + j] = 0
            state[STATE_SDD + j] = 0
        # the adjoint and every gradient of step t, t = nt - 1 ... 0. The tile row offsets
        # come from a table: a decreasing induction variable in the addresses keeps LLVM
        # from vectorizing the step loops (it cannot prove they do not wrap)
        for i in range(nt):
            rows_desc[i] = (nt - 1 - i) * BLOCK_D
        for i in range(nt):
            t = nt - 1 - i
            o = _U(rows_desc[i])
            q = prob.order[k, t0 + t]
            ou = _U(base.u + q * s_ul)
            bn = prob.B.data[base.B + q * s_bl]
            cn = prob.C.data[base.C + q * s_cl]
            if s_yd == 1:
                ody = _U(dy_base + q * s_yl)
                if plan.softplus:
                    acc_b, acc_c = _adjoint_step_n1(u.data, ou, dy.data, ody, tile, state, o, bn,
                                                    cn, unj, True)
                else:
                    acc_b, acc_c = _adjoint_step_n1(u.data, ou, dy.data, ody, tile, state, o, bn,
                                                    cn, unj, False)
            else:       # any layout of dy (e.g. a broadcast one): this step's row gathered
                for j in range(nj):
                    state[STATE_DY + j] = dy.data[dy_base + j * s_yd + q * s_yl]
                acc_b, acc_c = _adjoint_step_n1(u.data, ou, state, STATE_DY, tile, state, o, bn,
                                                cn, unj, plan.softplus)
            odu, odd = _U(du_base + q * s_gl), _U(ddt_base + q * s_ddl)
            if acc_du:
                _copy_out_step_n1(tile, o, du.data, odu, ddt.data, odd, unj, True)
            else:
                _copy_out_step_n1(tile, o, du.data, odu, ddt.data, odd, unj, False)
            grads.dB[blk, b, k, g, q, 0] = acc_b
            grads.dC[blk, b, k, g, q, 0] = acc_c
        for j in range(nj):
            acc.dA[0, j] += state[STATE_SDA + j]
            acc.dbias[j] += state[STATE_SDB + j]
            acc.dD[j] += state[STATE_SDD + j]
    for j in range(nj):
        grads.dA[b, k, d0 + j, 0] = acc.dA[0, j]
        grads.dD[b, k, d0 + j] = acc.dD[j]
        grads.dbias[b, k, d0 + j] = acc.dbias[j]


@jit()
def _backward_program(p, prob, plan, adjoint, grads):
    _, _, _, d0, nj = _coords(plan, p)
    f = adjoint.states.dtype
    n_state = plan.n_state
    params = _route_params(n_state, f)
    tiles = _tiles(n_state, f)
    work = _adjoint_tiles(n_state, f)
    acc = Accumulators(np.zeros((n_state, BLOCK_D), np.float64), np.zeros(BLOCK_D, np.float64),
                       np.zeros(BLOCK_D, np.float64))
    fused = _fused_n1(prob, plan, (grads.du.strides[2], grads.ddelta.strides[2]))
    tile_n1, state_n1 = np.zeros(TILE_SIZE, f), np.zeros(STATE_SIZE, f)
    for k in range(plan.routes):
        _load_route_params(prob, k, d0, nj, params)
        if fused:
            _backward_route_n1(p, k, prob, plan, adjoint, grads, params, tile_n1, state_n1,
                               acc)
        else:
            _backward_route(p, k, prob, plan, adjoint, grads, params, tiles, work, acc)


@jit()
def _backward_programs(first, step, n_programs, prob, plan, adjoint, grads):
    """Programs first, first + step, ... (one thread's share; the GIL is released)."""
    for p in range(first, n_programs, step):
        _backward_program(p, prob, plan, adjoint, grads)


# ----------------------------------------------------------------------------------------
# torch <-> numba
# ----------------------------------------------------------------------------------------

def _strided(t, ndim):
    """A Strided view of t's storage from its first element; size-1 dims get stride 0 (shared).
    A missing tensor gives a 1-element dummy."""
    if t is None:
        return Strided(np.zeros(1, np.float32), (0,) * ndim)
    strides = [s if n > 1 else 0 for n, s in zip(t.shape, t.stride())]
    extent = 1 + sum((n - 1) * s for n, s in zip(t.shape, strides))
    flat = torch.as_strided(t.detach(), (extent,), (1,))
    return Strided(flat.numpy(), tuple(int(s) for s in strides))


def _like_layout(t, shape, dtype, zero=False):
    """A new (…, DIM, L)-shaped tensor laid out like t: channels innermost if t has them so."""
    make = torch.zeros if zero else torch.empty
    if t is not None and t.stride(-2) == 1 and t.shape[-1] > 1 and t.shape[-2] > 1:
        out = make(*shape[:-2], shape[-1], shape[-2], dtype=dtype)
        return out.transpose(-1, -2)
    return make(*shape, dtype=dtype)


def _small(t, shape, dtype):
    """A (K, DIM[, N]) parameter as a contiguous array of the compute dtype (zeros if None)."""
    if t is None:
        return np.zeros(shape, dtype=np.float64 if dtype == torch.float64 else np.float32)
    return t.detach().to(dtype).contiguous().numpy()


_POOL = None
_POOL_SIZE = 0


def _reset_pool_after_fork():
    global _POOL, _POOL_SIZE
    _POOL, _POOL_SIZE = None, 0   # a forked child has the object but not its threads


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_reset_pool_after_fork)


def _run(kernel, n_programs, *args):
    """Run programs 0..n_programs-1 of a kernel on torch.get_num_threads() threads.

    Thread i runs programs i, i + n, i + 2n, ... (the kernels release the GIL); the calling
    thread is one of them. Each program's arithmetic is the same for any thread count.
    """
    global _POOL, _POOL_SIZE
    n = max(1, min(torch.get_num_threads(), n_programs))
    if n == 1:
        kernel(0, 1, n_programs, *args)
        return
    if _POOL is None or _POOL_SIZE < n - 1:
        if _POOL is not None:
            _POOL.shutdown(wait=False)
        _POOL = ThreadPoolExecutor(max_workers=n - 1, thread_name_prefix='mlla_kernels')
        _POOL_SIZE = n - 1
    futures = [_POOL.submit(kernel, i, n, n_programs, *args) for i in range(1, n)]
    kernel(0, n, n_programs, *args)
    for future in futures:
        future.result()


#: Channel-block widths the planner chooses from: whole 64-byte lines of fp32 channels (8:
#: only for tiny problems), at most BLOCK_D.
BLOCK_CHOICES = (64, 48, 32, 16, 8)
#: Fixed cost of a program, in channels' worth of work (fits the measurements in ``plan_blocks``).
PROGRAM_OVERHEAD = 16


def plan_blocks(batch, dim, groups):
    """(channels per program, programs per group).

    The width that gives the busiest thread the least work (programs are dealt to the threads
    round-robin, see ``_run``), a program of w channels costing w + PROGRAM_OVERHEAD: every
    program re-gathers its chunk's B and C and pays the loop set-up, so wide blocks are
    cheaper per channel, but a thread left idle costs more. Ties: fewer programs.
    Widths are whole cache lines, so no two threads write into one line. Measured on the
    2-core box (2 threads), forward+backward of all scans of a model at 1024²: VMamba-T
    1.41-1.52 s with 48/64-wide blocks against 1.78-1.81 s with 32; Vim-Ti 1.83-2.21 s
    (64) against 2.94-2.99 s (32). Examples, 2 threads: 96 channels -> 2 x 48 (32 would
    leave one thread 2 of 3 programs), 192 -> 4 x 48, 384 -> 6 x 64, 32 -> 2 x 16;
    4 threads: 96 -> 3 x 32.
    """
    per_group = dim // groups
    threads = max(1, torch.get_num_threads())
    best = None
    for block in BLOCK_CHOICES:
        blocks = -(-per_group // block)
        widths = [min(block, per_group - i * block) for i in range(blocks)] * (batch * groups)
        n = min(threads, len(widths))
        busiest = max(sum(widths[i::n]) + PROGRAM_OVERHEAD * len(widths[i::n])
                      for i in range(n))
        cost = (busiest, len(widths), block)
        if best is None or cost < best[0]:
            best = (cost, block, blocks)
    return best[1], best[2]


def _problem(u, delta, A, B, C, D, z, delta_bias, order):
    n_routes, dim = delta.shape[1], delta.shape[2]
    dtype = u.dtype
    return Problem(_strided(u, 4), _strided(delta, 4), _strided(B, 5), _strided(C, 5),
                   _strided(z, 3), _small(A, (1, 1, 1), dtype), _small(D, (n_routes, dim), dtype),
                   _small(delta_bias, (n_routes, dim), dtype),
                   order.to(torch.int64).contiguous().numpy())


def _plan(u, delta, B, z, delta_softplus, merge):
    batch, n_routes, dim, length = delta.shape
    groups, n_state = B.shape[2], B.shape[3]
    block, blocks = plan_blocks(batch, dim, groups)
    return Plan(batch, n_routes, dim, length, n_state, groups, -(-length // CHUNK), blocks, block,
                z is not None, bool(delta_softplus), u.shape[1] == 1 and n_routes > 1,
                bool(merge) or n_routes == 1)


def saved_shapes(batch, n_routes, dim, length, n_state, compute):
    """What :func:`forward` saves for :func:`backward` (shapes and dtypes, for fake tensors):
    the state at each chunk start, (batch, K, n_chunks, N, DIM) in the compute dtype."""
    return [((batch, n_routes, -(-length // CHUNK), n_state, dim), compute)]


def forward(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
            order=None, merge=True, save=True):
    """The scan on the layout of the module docstring, no autograd.

    Returns (y in u's dtype: (batch, DIM, L) merged, else (batch, K, DIM, L); last_state
    (batch, K, DIM, N) in the compute dtype; ``saved``: the list :func:`backward` needs, the
    chunk start states (:func:`saved_shapes`; a 1-element dummy unless ``save``)).
    fp16/bf16 inputs are read as float32 (one cast each).
    """
    dtype_in = u.dtype
    dtype = cpu_compute_dtype(u, "Use backend='triton' or 'torch' (or 'auto') for CUDA tensors.")
    u, delta, A, B, C, D, z, delta_bias = (
        None if t is None else t.detach().to(dtype) for t in (u, delta, A, B, C, D, z, delta_bias))
    plan = _plan(u, delta, B, z, delta_softplus, merge)
    y_shape = ((plan.batch, plan.dim, plan.length) if merge else
               (plan.batch, plan.routes, plan.dim, plan.length))
    y = _like_layout(u, y_shape, dtype)
    y4 = y.unsqueeze(1) if merge else y
    last = torch.empty(plan.batch, plan.routes, plan.dim, plan.n_state, dtype=dtype)
    states = torch.empty((plan.batch, plan.routes, plan.n_chunks, plan.n_state, plan.dim)
                         if save else (1, 1, 1, 1, 1), dtype=dtype)
    prob = _problem(u, delta, A, B, C, D, z, delta_bias, order)
    out = ForwardOut(_strided(y4, 4), states.numpy(), last.numpy(), save)
    _run(_forward_programs, plan.batch * plan.groups * plan.blocks, prob, plan, out)
    return y.to(dtype_in), last, [states]


def backward(dy, dlast, saved, u, delta, A, B, C, D=None, z=None, delta_bias=None,
             delta_softplus=False, order=None, merge=True):
    """Gradients of :func:`forward`'s (y, last_state) with respect to u, delta, A, B, C, D, z
    and delta_bias (None for a missing input), each in its input's dtype; ``dy``/``dlast``
    may be None (no gradient), ``saved`` is what the forward returned."""
    inputs = (u, delta, A, B, C, D, z, delta_bias)
    dtype = torch.float64 if u.dtype == torch.float64 else torch.float32
    u, delta, A, B, C, D, z, delta_bias = (
        None if t is None else t.detach().to(dtype) for t in inputs)
    states, = saved
    plan = _plan(u, delta, B, z, delta_softplus, merge)
    if dy is None:
        dy = torch.zeros(plan.batch, plan.dim, plan.length, dtype=dtype)
    dy = dy.detach().to(dtype)
    du = _like_layout(u, tuple(u.shape), dtype, zero=plan.shared_u)
    ddelta = _like_layout(delta, tuple(delta.shape), dtype)
    dz = None if z is None else _like_layout(z, tuple(z.shape), dtype, zero=plan.routes > 1)
    acc = torch.float64
    per_route = (plan.batch, plan.routes, plan.dim)
    partial = (plan.blocks, plan.batch, plan.routes, plan.groups, plan.length, plan.n_state)
    dA, dD, dbias = (torch.empty(*per_route, plan.n_state, dtype=acc),
                     torch.empty(per_route, dtype=acc), torch.empty(per_route, dtype=acc))
    dBp, dCp = torch.empty(partial, dtype=dtype), torch.empty(partial, dtype=dtype)
    dlast_np = (np.zeros((1, 1, 1, 1), states.numpy().dtype) if dlast is None
                else dlast.detach().to(dtype).contiguous().numpy())
    adjoint = Adjoint(_strided(dy.unsqueeze(1) if dy.dim() == 3 else dy, 4),
                      states.numpy(), dlast_np, dlast is not None)
    grads = Grads(_strided(du, 4), _strided(ddelta, 4), _strided(dz, 3), dA.numpy(),
                  dD.numpy(), dbias.numpy(), dBp.numpy(), dCp.numpy())
    prob = _problem(u, delta, A, B, C, D, z, delta_bias, order)
    _run(_backward_programs, plan.batch * plan.groups * plan.blocks, prob, plan, adjoint,
         grads)
    # fixed-order sums over channel blocks and batch: thread-count independent
    dB = dBp.sum(0).transpose(-1, -2)
    dC = dCp.sum(0).transpose(-1, -2)
    if B.shape[1] == 1 and plan.routes > 1:
        dB = dB.sum(1, keepdim=True)
    if C.shape[1] == 1 and plan.routes > 1:
        dC = dC.sum(1, keepdim=True)

    def param_grad(grad, like):
        return None if like is None else grad.sum(0).view_as(like)

    grads = (du, ddelta, param_grad(dA, A), dB, dC, param_grad(dD, D), dz,
             param_grad(dbias, delta_bias))
    return tuple(None if g is None else g.to(t.dtype) for g, t in zip(grads, inputs))


class RoutedScanNumba(torch.autograd.Function):
    """Autograd wrapper of :func:`forward` and :func:`backward` (direct use of the engine;
    the entry points run it through the ``mlla_kernels::routed_scan`` operator,
    :mod:`mlla_kernels.library`).

    forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus, order, merge)
    -> (y, last_state (batch, K, DIM, N)); y (batch, DIM, L) merged, else (batch, K, DIM, L).
    """

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus, order, merge):
        save = any(ctx.needs_input_grad[:8])
        y, last, saved = forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus, order,
                                 merge, save)
        if save:
            ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, order, *saved)
        ctx.options = (delta_softplus, merge)
        ctx.set_materialize_grads(False)
        return y, last

    @staticmethod
    def backward(ctx, dy, dlast):
        u, delta, A, B, C, D, z, delta_bias, order, *saved = ctx.saved_tensors
        delta_softplus, merge = ctx.options
        grads = backward(dy, dlast, saved, u, delta, A, B, C, D, z, delta_bias,
                         delta_softplus, order, merge)
        return grads + (None, None, None)


def routed_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                order=None, merge=True):
    """Run the fused CPU scan on the layout of the module docstring, with autograd.

    Returns (y in u's dtype: (batch, DIM, L) merged, else (batch, K, DIM, L); last_state
    (batch, K, DIM, N) float32, or float64 for float64 inputs). fp16/bf16 inputs are read as
    float32 (one cast each).
    """
    return RoutedScanNumba.apply(u, delta, A, B, C, D, z, delta_bias, bool(delta_softplus),
                                 order, bool(merge))


def warm_up():
    """Compile (or load from the disk cache) the float32 kernels; returns the seconds taken."""
    start = time.perf_counter()
    u = torch.randn(1, 1, 2, 3, requires_grad=True)
    y, _ = routed_scan(u, torch.randn(1, 1, 2, 3), -torch.rand(1, 2, 1),
                       torch.randn(1, 1, 1, 1, 3), torch.randn(1, 1, 1, 1, 3),
                       z=torch.randn(1, 2, 3), delta_softplus=True,
                       order=torch.arange(3).view(1, 3))
    y.sum().backward()
    return time.perf_counter() - start

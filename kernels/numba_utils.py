"""One fused CPU selective scan (numba) that serves the three operations, forward and backward.

The routes and layouts are those of the Triton kernels (see :mod:`mlla_kernels.routes`):
u (batch, Ku, DIM, L) with Ku = 1 (shared) or K; delta (batch, K, DIM, L); A (K, DIM, N);
B, C (batch, K, G, N, L); D, delta_bias (K, DIM); z (batch, DIM, L); route k visits position
``pos_k(t)`` at step t (reversed and/or column-major walks of an H x W map), and
y (batch, DIM, L) = sum over routes of (<C, h_k> + D_k u) * silu(z).

**One program** owns one (batch, group, block of up to ``BLOCK_D`` channels) and runs every route
over it, so routes that share u, z or y never race. It walks each route in chunks of ``CHUNK``
steps: it gathers the chunk's u, delta, z, B and C where they lie (any strides; a channel-
contiguous layout is read with vector loads, a time-contiguous one is transposed on the fly),
applies bias + softplus, then runs the recurrence with the channels as the vector lanes,
``h[n, :] = exp(delta * A[n, :]) * h[n, :] + delta * u * B[n]`` and ``y += h[n, :] * C[n]``,
and writes y once. Nothing of size (batch, DIM, L, N) is ever stored.

**Backward by recomputation** (as mamba-ssm's CUDA kernel): the forward saves only the state at
the start of every chunk (DIM * L * N / CHUNK floats); the backward walks the chunks last to
first, recomputes the chunk's states from its saved start, then runs the adjoint
``g_t = C_t dy_t + exp(delta_{t+1} A) g_{t+1}`` backwards through the chunk and produces the
gradients of u, delta, A, B, C, D, z and delta_bias in the same pass.

**Vectorizable math.** PyPI's llvmlite has no vector math library, so ``math.exp``/``log1p``
in a loop are scalar calls that stop LLVM from vectorizing it. The float32 kernels use
polynomial ``exp2``/``exp``/``log1p`` written as plain arithmetic (error <= 3e-7 relative, at the
level of fp32 rounding of their argument); float64 (kept for verification: gradcheck) uses the
exact library functions. State and accumulation are in the compute dtype (fp32 for fp16/bf16/
fp32 inputs, which are read as fp32).

Threads: programs run on as many threads as torch uses (``torch.get_num_threads()``): the
compiled code releases the GIL and a small pool of Python threads runs one share each (no
second OpenMP runtime beside torch's, nothing to go wrong after a fork). A program's
arithmetic does not depend on the thread count; only the channel-block width is chosen to
balance the threads (``_plan``), which regroups the sums over channels of dB and dC (fp32
rounding).

Compiled code is cached on disk (numba's cache: next to this file, else the user cache dir
or ``NUMBA_CACHE_DIR``); where no cache location is writable the kernels compile in memory
once per process. ``MLLA_KERNELS_NUMBA_CACHE=0`` turns the disk cache off.
"""
import math
import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

#: Most channels per program (the buffers' width): the vector lanes of the hot loops. The
#: block actually used (one of BLOCK_CHOICES) is passed at run time: a compile-time trip count
#: lets LLVM unroll the channel loops and then vectorize across time with gathers instead.
BLOCK_D = 64
#: Time steps per chunk: the tile gathered at once, and the spacing of the states the forward
#: saves for the backward (which keeps CHUNK x N x BLOCK_D states and decays of one chunk).
CHUNK = 32

CACHE_ENV = 'MLLA_KERNELS_NUMBA_CACHE'
F32 = np.float32


def _cache_wanted() -> bool:
    return os.environ.get(CACHE_ENV, '1').strip().lower() not in ('0', 'false', 'no', 'off')


_CACHE_WARNED = []


def _jit():
    """njit with fastmath, releasing the GIL; disk-cached where a location is writable."""
    options = dict(fastmath=True, nogil=True, error_model='numpy')

    def decorate(fn):
        if _cache_wanted():
            try:
                return njit(cache=True, **options)(fn)
            except RuntimeError as err:  # numba: "cannot cache function ...: no locator"
                if not _CACHE_WARNED:
                    _CACHE_WARNED.append(fn.__name__)
                    warnings.warn(f'mlla_kernels: numba cannot cache the compiled kernels on '
                                  f'disk ({err}); they will be compiled once per process. Set '
                                  f'NUMBA_CACHE_DIR to a writable folder to keep them.',
                                  stacklevel=2)
        return njit(cache=False, **options)(fn)
    return decorate


# ----------------------------------------------------------------------------------------
# Vectorizable math
# ----------------------------------------------------------------------------------------

@intrinsic
def _bits_as_float32(typingctx, bits):
    """Reinterpret the low 32 bits of an integer as a float32 (a vectorizable bitcast)."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        value = args[0]
        if bits.bitwidth > 32:
            value = builder.trunc(value, ir.IntType(32))
        return builder.bitcast(value, ir.FloatType())
    return types.float32(bits), codegen


_LOG2E = F32(1.4426950408889634)
_LOG2E_64 = 1.4426950408889634  # scales A (stored in the compute dtype)
_LN2_HI = F32(0.693359375)          # ln 2 = _LN2_HI + _LN2_LO; _LN2_HI has 9 significant bits
_LN2_LO = F32(-2.12194440e-4)
_HALF = F32(0.5)
_ONE = F32(1.0)
_TWO = F32(2.0)
_ZERO = F32(0.0)
_EXP2_MIN = F32(-127.0)             # 2^-127 and below -> exactly 0 (bits of k = -127 are 0)
_EXP2_MAX = F32(127.0)
_EXP_MIN = F32(-88.0)
_EXP_MAX = F32(88.0)
_BIAS = np.int32(127)
_MANT = np.int32(23)
# 2^f on [-1/2, 1/2], degree 6 least squares in relative error: 1e-7 relative in fp32.
_P2 = tuple(F32(c) for c in (0.00015337585110318804, 0.0013399869912467171,
                             0.00961851959091269, 0.05550328974000945, 0.2402264660737268,
                             0.6931472056112569))
# e^r on [-ln2/2, ln2/2] (r = x - k ln2), degree 6: 8e-8 relative in fp32.
_PE = tuple(F32(c) for c in (0.001375140818041099, 0.008368919081647762,
                             0.041669533395562855, 0.16666518437203998,
                             0.49999988592958267))
# atanh(s)/s as a polynomial in q = s^2 on [0, 1/9] (s = e/(2+e), e in [0, 1]).
_PL = tuple(F32(c) for c in (0.1408733287062677, 0.13980713183962998, 0.20012426145660145,
                             0.333331580020551, 1.0000000039349635))


@_jit()
def _exp2_f32(t):
    """2**t in float32: t = k + f (k integer, |f| <= 1/2), 2**f by polynomial, 2**k by bits."""
    t = min(max(t, _EXP2_MIN), _EXP2_MAX)
    k = np.floor(t + _HALF)
    f = t - k
    p = (((((_P2[0] * f + _P2[1]) * f + _P2[2]) * f + _P2[3]) * f + _P2[4]) * f
         + _P2[5]) * f + _ONE
    return p * _bits_as_float32((np.int32(k) + _BIAS) << _MANT)


@_jit()
def _exp_f32(x):
    """e**x in float32 to ~1 ulp: Cody-Waite reduction by ln 2, then a polynomial."""
    x = min(max(x, _EXP_MIN), _EXP_MAX)
    k = np.floor(x * _LOG2E + _HALF)
    r = (x - k * _LN2_HI) - k * _LN2_LO
    p = ((((((_PE[0] * r + _PE[1]) * r + _PE[2]) * r + _PE[3]) * r + _PE[4]) * r + _ONE) * r
         + _ONE)
    return p * _bits_as_float32((np.int32(k) + _BIAS) << _MANT)


@_jit()
def _log1p_unit_f32(e):
    """log(1 + e) for e in [0, 1]: 2 atanh(s) with s = e / (2 + e) <= 1/3."""
    s = e / (_TWO + e)
    q = s * s
    return _TWO * s * ((((_PL[0] * q + _PL[1]) * q + _PL[2]) * q + _PL[3]) * q + _PL[4])


def exp2(t):
    """2**t (float32: polynomial; float64: libm)."""


def exp(x):
    """e**x (float32: polynomial; float64: libm)."""


def log1p_unit(e):
    """log(1 + e) for 0 <= e <= 1 (float32: polynomial; float64: libm)."""


@overload(exp2, fastmath=True)
def _exp2_overload(t):
    if t == types.float32:
        return lambda t: _exp2_f32(t)
    return lambda t: np.exp2(t)


@overload(exp, fastmath=True)
def _exp_overload(x):
    if x == types.float32:
        return lambda x: _exp_f32(x)
    return lambda x: math.exp(x)


@overload(log1p_unit, fastmath=True)
def _log1p_overload(e):
    if e == types.float32:
        return lambda e: _log1p_unit_f32(e)
    return lambda e: math.log1p(e)


@_jit()
def _softplus(x):
    """log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow, full relative accuracy."""
    return max(x, _ZERO) + log1p_unit(exp(-abs(x)))


@_jit()
def _sigmoid(x):
    """1 / (1 + e^-x), from e = e^-|x| so that neither tail loses precision."""
    e = exp(-abs(x))
    r = _ONE / (_ONE + e)
    return r if x >= _ZERO else e * r


# ----------------------------------------------------------------------------------------
# Tiles: gather a chunk of a route from any layout, scatter it back
# ----------------------------------------------------------------------------------------

@_jit()
def _route_positions(pos, t0, nt, length, height, width, column_major, reversed_):
    """pos[t] = the position the route visits at step t0 + t (see the module docstring).

    A column-major walk is followed by stepping its (row, column) coordinates, so only the
    chunk's first step pays for a division.
    """
    s = length - 1 - t0 if reversed_ else t0
    if not column_major:
        step = -1 if reversed_ else 1
        for t in range(nt):
            pos[t] = s + t * step
        return
    row = s % height
    col = s // height
    for t in range(nt):
        pos[t] = row * width + col
        if reversed_:
            row -= 1
            if row < 0:
                row = height - 1
                col -= 1
        else:
            row += 1
            if row == height:
                row = 0
                col += 1


@_jit()
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


@_jit()
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


@_jit()
def _program_coords(p, dims):
    """Program p -> (b, g, first channel, channel count)."""
    groups, dim, n_blocks, bd = dims[5], dims[2], dims[11], dims[12]
    per_group = dim // groups
    b = p // (groups * n_blocks)
    rest = p % (groups * n_blocks)
    g = rest // n_blocks
    blk = rest % n_blocks
    d0 = g * per_group + blk * bd
    return b, g, blk, d0, min(bd, per_group - blk * bd)


@_jit()
def _prepare_delta(dt, bias_row, nt, nj, softplus, sig, with_grad):
    """dt = softplus(dt + bias) (or dt + bias); with_grad: sig = softplus'(dt + bias)."""
    for t in range(nt):
        for j in range(nj):
            x = dt[t, j] + bias_row[j]
            if softplus:
                e = exp(-abs(x))                      # shared by softplus and its derivative
                if with_grad:
                    r = _ONE / (_ONE + e)
                    sig[t, j] = r if x >= _ZERO else e * r
                x = max(x, _ZERO) + log1p_unit(e)
            dt[t, j] = x


@_jit()
def _input_grads(gbt, dtat, dtt, ut, dyt, sig, skip, nt, nj, softplus, dut, ddtt, sums_bias,
                 sums_skip):
    """Per step of a chunk: du = gb dt + D dy', ddelta = (gb u + dta) softplus'; and the chunk's
    sums of ddelta (the bias gradient) and of dy' u (D's)."""
    sums_bias[:nj] = 0
    sums_skip[:nj] = 0
    for t in range(nt):
        for j in range(nj):
            gb = gbt[t, j]
            dut[t, j] = gb * dtt[t, j] + skip[j] * dyt[t, j]
            dd = gb * ut[t, j] + dtat[t, j]
            if softplus:
                dd *= sig[t, j]
            ddtt[t, j] = dd
            sums_bias[j] += dd
            sums_skip[j] += dyt[t, j] * ut[t, j]


@_jit()
def _gate(yt, zt, nt, nj):
    """yt *= silu(zt)."""
    for t in range(nt):
        for j in range(nj):
            zv = zt[t, j]
            yt[t, j] *= zv * _sigmoid(zv)


@_jit()
def _gate_grads(zt, dyt, dzt, nt, nj):
    """Backward of y = ypre * silu(z): zt <- silu'(z), dzt <- dy, dyt <- dy * silu(z)."""
    for t in range(nt):
        for j in range(nj):
            zv = zt[t, j]
            s = _sigmoid(zv)
            zt[t, j] = s * (_ONE + zv * (_ONE - s))
            dzt[t, j] = dyt[t, j]
            dyt[t, j] *= zv * s


# ----------------------------------------------------------------------------------------
# Forward
# ----------------------------------------------------------------------------------------

@_jit()
def _forward_program(p, u, su, dt, sdt, A, Bm, sB, Cm, sC, Dv, bias, z, sz, y, sy,
                     states, last, dims, has_z, softplus, save_states):
    n_routes, length, n_state = dims[1], dims[3], dims[4]
    height, width, col_mask, rev_mask, n_chunks = dims[6], dims[7], dims[8], dims[9], dims[10]
    b, g, blk, d0, nj = _program_coords(p, dims)
    bd = dims[12]   # <= BLOCK_D, read at run time so LLVM vectorizes the channel loops
    f = y.dtype
    h = np.zeros((n_state, BLOCK_D), f)
    a2 = np.zeros((n_state, BLOCK_D), f)        # A * log2(e): exp(dt A) = exp2(dt a2)
    skip = np.zeros(BLOCK_D, f)
    bias_row = np.zeros(BLOCK_D, f)
    ut = np.zeros((CHUNK, BLOCK_D), f)
    dtt = np.zeros((CHUNK, BLOCK_D), f)
    dtu = np.zeros((CHUNK, BLOCK_D), f)
    yt = np.zeros((CHUNK, BLOCK_D), f)
    zt = np.zeros((CHUNK, BLOCK_D), f)
    sig = np.zeros((CHUNK, BLOCK_D), f)
    bt = np.zeros((CHUNK, n_state), f)
    ct = np.zeros((CHUNK, n_state), f)
    pos = np.zeros(CHUNK, np.int64)
    for k in range(n_routes):
        for n in range(n_state):
            for j in range(nj):
                a2[n, j] = A[k, d0 + j, n] * _LOG2E_64
        for j in range(nj):
            skip[j] = Dv[k, d0 + j]
            bias_row[j] = bias[k, d0 + j]
        h[:] = 0
        u_base = b * su[0] + k * su[1] + d0 * su[2]
        dt_base = b * sdt[0] + k * sdt[1] + d0 * sdt[2]
        b_base = b * sB[0] + k * sB[1] + g * sB[2]
        c_base = b * sC[0] + k * sC[1] + g * sC[2]
        z_base = b * sz[0] + d0 * sz[1]
        y_base = b * sy[0] + d0 * sy[1]
        for c in range(n_chunks):
            t0 = c * CHUNK
            nt = min(CHUNK, length - t0)
            if save_states:
                for n in range(n_state):
                    for j in range(nj):
                        states[b, k, c, n, d0 + j] = h[n, j]
            _route_positions(pos, t0, nt, length, height, width, (col_mask >> k) & 1,
                             (rev_mask >> k) & 1)
            _gather(u, u_base, su[2], su[3], pos, nt, nj, ut)
            _gather(dt, dt_base, sdt[2], sdt[3], pos, nt, nj, dtt)
            _prepare_delta(dtt, bias_row, nt, nj, softplus, sig, False)
            for t in range(nt):
                for j in range(bd):
                    dtu[t, j] = dtt[t, j] * ut[t, j]
            _gather(Bm, b_base, sB[3], sB[4], pos, nt, n_state, bt)
            _gather(Cm, c_base, sC[3], sC[4], pos, nt, n_state, ct)
            # the recurrence: padded channels have dt = u = a2 = 0, so their h stays 0
            for t in range(nt):
                for j in range(bd):
                    yt[t, j] = skip[j] * ut[t, j]
            for t in range(nt):
                yrow = yt[t]
                dtrow = dtt[t]
                dturow = dtu[t]
                for n in range(n_state):
                    bn = bt[t, n]
                    cn = ct[t, n]
                    hrow = h[n]
                    arow = a2[n]
                    for j in range(bd):
                        hv = exp2(dtrow[j] * arow[j]) * hrow[j] + dturow[j] * bn
                        hrow[j] = hv
                        yrow[j] += hv * cn
            if has_z:
                _gather(z, z_base, sz[1], sz[2], pos, nt, nj, zt)
                _gate(yt, zt, nt, nj)
            _scatter(y, y_base, sy[1], sy[2], pos, nt, nj, yt, k > 0)
        for n in range(n_state):
            for j in range(nj):
                last[b, k, d0 + j, n] = h[n, j]


@_jit()
def _forward_programs(first, step, n_programs, u, su, dt, sdt, A, Bm, sB, Cm, sC, Dv, bias, z,
                      sz, y, sy, states, last, dims, has_z, softplus, save_states):
    """Programs first, first + step, ... (one thread's share; the GIL is released)."""
    for p in range(first, n_programs, step):
        _forward_program(p, u, su, dt, sdt, A, Bm, sB, Cm, sC, Dv, bias, z, sz, y, sy,
                         states, last, dims, has_z, softplus, save_states)


# ----------------------------------------------------------------------------------------
# Backward
# ----------------------------------------------------------------------------------------

@_jit()
def _backward_program(p, u, su, dt, sdt, A, Bm, sB, Cm, sC, Dv, bias, z, sz, dy, sdy,
                      states, dlast, du, sdu, ddt, sddt, dA, dBp, dCp, dD, dbias, dz, sdz,
                      dims, has_z, softplus, has_dlast, shared_u):
    n_routes, length, n_state = dims[1], dims[3], dims[4]
    height, width, col_mask, rev_mask, n_chunks = dims[6], dims[7], dims[8], dims[9], dims[10]
    b, g, blk, d0, nj = _program_coords(p, dims)
    bd = dims[12]   # <= BLOCK_D, read at run time so LLVM vectorizes the channel loops
    f = dy.dtype
    a_raw = np.zeros((n_state, BLOCK_D), f)
    a2 = np.zeros((n_state, BLOCK_D), f)
    adj = np.zeros((n_state, BLOCK_D), f)        # dL/dh_t carried backwards (times a_{t+1})
    # hs[0]: the state before the chunk, hs[t + 1]: after its step t (no branch on t == 0:
    # a conditional choice between two array views costs reference counting per step)
    hs = np.zeros((CHUNK + 1, n_state, BLOCK_D), f)
    decays = np.zeros((CHUNK, n_state, BLOCK_D), f)
    da_chunk = np.zeros((n_state, BLOCK_D), f)
    da_acc = np.zeros((n_state, BLOCK_D), np.float64)
    skip = np.zeros(BLOCK_D, f)
    bias_row = np.zeros(BLOCK_D, f)
    dskip_acc = np.zeros(BLOCK_D, np.float64)
    dbias_acc = np.zeros(BLOCK_D, np.float64)
    gbt = np.zeros((CHUNK, BLOCK_D), f)
    dtat = np.zeros((CHUNK, BLOCK_D), f)
    sums_bias = np.zeros(BLOCK_D, f)
    sums_skip = np.zeros(BLOCK_D, f)
    ut = np.zeros((CHUNK, BLOCK_D), f)
    dtt = np.zeros((CHUNK, BLOCK_D), f)
    dtu = np.zeros((CHUNK, BLOCK_D), f)
    sig = np.zeros((CHUNK, BLOCK_D), f)
    zt = np.zeros((CHUNK, BLOCK_D), f)
    dyt = np.zeros((CHUNK, BLOCK_D), f)          # dy, then dy * silu(z)
    ypre = np.zeros((CHUNK, BLOCK_D), f)
    dut = np.zeros((CHUNK, BLOCK_D), f)
    ddtt = np.zeros((CHUNK, BLOCK_D), f)
    dzt = np.zeros((CHUNK, BLOCK_D), f)
    bt = np.zeros((CHUNK, n_state), f)
    ct = np.zeros((CHUNK, n_state), f)
    dbt = np.zeros((CHUNK, n_state), f)
    dct = np.zeros((CHUNK, n_state), f)
    pos = np.zeros(CHUNK, np.int64)
    for k in range(n_routes):
        for n in range(n_state):
            for j in range(nj):
                a_raw[n, j] = A[k, d0 + j, n]
                a2[n, j] = A[k, d0 + j, n] * _LOG2E_64
        for j in range(nj):
            skip[j] = Dv[k, d0 + j]
            bias_row[j] = bias[k, d0 + j]
        adj[:] = 0
        if has_dlast:
            for n in range(n_state):
                for j in range(nj):
                    adj[n, j] = dlast[b, k, d0 + j, n]
        da_acc[:] = 0
        dskip_acc[:] = 0
        dbias_acc[:] = 0
        u_base = b * su[0] + k * su[1] + d0 * su[2]
        dt_base = b * sdt[0] + k * sdt[1] + d0 * sdt[2]
        b_base = b * sB[0] + k * sB[1] + g * sB[2]
        c_base = b * sC[0] + k * sC[1] + g * sC[2]
        z_base = b * sz[0] + d0 * sz[1]
        dy_base = b * sdy[0] + d0 * sdy[1]
        du_base = b * sdu[0] + k * sdu[1] + d0 * sdu[2]
        ddt_base = b * sddt[0] + k * sddt[1] + d0 * sddt[2]
        dz_base = b * sdz[0] + d0 * sdz[1]
        for c in range(n_chunks - 1, -1, -1):
            t0 = c * CHUNK
            nt = min(CHUNK, length - t0)
            _route_positions(pos, t0, nt, length, height, width, (col_mask >> k) & 1,
                             (rev_mask >> k) & 1)
            _gather(u, u_base, su[2], su[3], pos, nt, nj, ut)
            _gather(dt, dt_base, sdt[2], sdt[3], pos, nt, nj, dtt)
            _prepare_delta(dtt, bias_row, nt, nj, softplus, sig, True)
            _gather(dy, dy_base, sdy[1], sdy[2], pos, nt, nj, dyt)
            if has_z:
                _gather(z, z_base, sz[1], sz[2], pos, nt, nj, zt)
                _gate_grads(zt, dyt, dzt, nt, nj)   # zt: silu'(z), dzt: dy, dyt: dy silu(z)
            for t in range(nt):
                for j in range(bd):
                    dtu[t, j] = dtt[t, j] * ut[t, j]
            _gather(Bm, b_base, sB[3], sB[4], pos, nt, n_state, bt)
            _gather(Cm, c_base, sC[3], sC[4], pos, nt, n_state, ct)
            # recompute the chunk's decays and states from its saved start state; with them,
            # dC_t = sum_j h_t dy'_t and (for dz) the pre-gate output sum_n C_t h_t + D u
            for n in range(n_state):
                for j in range(nj):
                    hs[0, n, j] = states[b, k, c, n, d0 + j]
            for t in range(nt):
                for j in range(bd):
                    ypre[t, j] = skip[j] * ut[t, j]
            for t in range(nt):
                dtrow = dtt[t]
                dturow = dtu[t]
                dyrow = dyt[t]
                yrow = ypre[t]
                for n in range(n_state):
                    bn = bt[t, n]
                    cn = ct[t, n]
                    prev = hs[t, n]
                    arow = a2[n]
                    drow = decays[t, n]
                    hrow = hs[t + 1, n]
                    acc = _ZERO
                    for j in range(bd):
                        a = exp2(dtrow[j] * arow[j])
                        hv = a * prev[j] + dturow[j] * bn
                        drow[j] = a
                        hrow[j] = hv
                        acc += hv * dyrow[j]
                        yrow[j] += hv * cn
                    dct[t, n] = acc
            # the adjoint, backwards through the chunk
            da_chunk[:] = 0
            gbt[:nt] = 0
            dtat[:nt] = 0
            for t in range(nt - 1, -1, -1):
                dyrow = dyt[t]
                dtrow = dtt[t]
                dturow = dtu[t]
                gb = gbt[t]        # sum_n dL/dh_t B_t: dL/d(dt u)
                dta = dtat[t]      # sum_n dL/d(dt A) A: dL/d(dt) through the decay
                for n in range(n_state):
                    bn = bt[t, n]
                    cn = ct[t, n]
                    prev = hs[t, n]
                    drow = decays[t, n]
                    arow = a_raw[n]
                    grow = adj[n]
                    darow = da_chunk[n]
                    acc = _ZERO
                    for j in range(bd):
                        gh = grow[j] + cn * dyrow[j]           # dL/dh_t
                        w = gh * drow[j] * prev[j]             # dL/d(dt A) at (t, n, j)
                        darow[j] += w * dtrow[j]
                        dta[j] += w * arow[j]
                        gb[j] += gh * bn
                        acc += gh * dturow[j]
                        grow[j] = drow[j] * gh
                    dbt[t, n] = acc
            _input_grads(gbt, dtat, dtt, ut, dyt, sig, skip, nt, nj, softplus, dut, ddtt,
                         sums_bias, sums_skip)
            for j in range(nj):
                dbias_acc[j] += sums_bias[j]
                dskip_acc[j] += sums_skip[j]
            for n in range(n_state):
                for j in range(nj):
                    da_acc[n, j] += da_chunk[n, j]
            if has_z:
                for t in range(nt):
                    for j in range(nj):
                        dzt[t, j] = dzt[t, j] * ypre[t, j] * zt[t, j]
                _scatter(dz, dz_base, sdz[1], sdz[2], pos, nt, nj, dzt, k > 0)
            _scatter(du, du_base, sdu[2], sdu[3], pos, nt, nj, dut, shared_u and k > 0)
            _scatter(ddt, ddt_base, sddt[2], sddt[3], pos, nt, nj, ddtt, False)
            for t in range(nt):
                for n in range(n_state):
                    dBp[blk, b, k, g, pos[t], n] = dbt[t, n]
                    dCp[blk, b, k, g, pos[t], n] = dct[t, n]
        for j in range(nj):
            for n in range(n_state):
                dA[b, k, d0 + j, n] = da_acc[n, j]
            dD[b, k, d0 + j] = dskip_acc[j]
            dbias[b, k, d0 + j] = dbias_acc[j]


@_jit()
def _backward_programs(first, step, n_programs, u, su, dt, sdt, A, Bm, sB, Cm, sC, Dv, bias, z,
                       sz, dy, sdy, states, dlast, du, sdu, ddt, sddt, dA, dBp, dCp, dD, dbias,
                       dz, sdz, dims, has_z, softplus, has_dlast, shared_u):
    """Programs first, first + step, ... (one thread's share; the GIL is released)."""
    for p in range(first, n_programs, step):
        _backward_program(p, u, su, dt, sdt, A, Bm, sB, Cm, sC, Dv, bias, z, sz, dy, sdy,
                          states, dlast, du, sdu, ddt, sddt, dA, dBp, dCp, dD, dbias, dz, sdz,
                          dims, has_z, softplus, has_dlast, shared_u)


# ----------------------------------------------------------------------------------------
# torch <-> numba
# ----------------------------------------------------------------------------------------

def _flat(t, ndim):
    """(1-D numpy view of t's storage from its first element, strides as an int64 tuple).

    Route dims of size 1 get stride 0 (shared). A missing tensor gives a 1-element dummy.
    """
    if t is None:
        return np.zeros(1, np.float32), (0,) * ndim
    strides = [s if n > 1 else 0 for n, s in zip(t.shape, t.stride())]
    extent = 1 + sum((n - 1) * s for n, s in zip(t.shape, strides))
    flat = torch.as_strided(t.detach(), (extent,), (1,))
    return flat.numpy(), tuple(int(s) for s in strides)


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
#: Fixed cost of a program, in channels' worth of work (fits the measurements in ``_plan``).
PROGRAM_OVERHEAD = 16


def _plan(batch, dim, groups):
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


class RoutedScanNumba(torch.autograd.Function):
    """Autograd wrapper of the fused CPU kernels, on the canonical layouts above.

    forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus, height, width, col_mask,
    rev_mask) -> (y (batch, DIM, L), last_state (batch, K, DIM, N)), in the compute dtype.
    """

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus, height, width,
                col_mask, rev_mask):
        batch, n_routes, dim, length = delta.shape
        groups, n_state = B.shape[2], B.shape[3]
        block, blocks = _plan(batch, dim, groups)
        n_chunks = -(-length // CHUNK)
        dims = (batch, n_routes, dim, length, n_state, groups, height, width, col_mask,
                rev_mask, n_chunks, blocks, block)
        dtype = u.dtype
        save = any(ctx.needs_input_grad[:8])
        y = _like_layout(u, (batch, dim, length), dtype)
        last = torch.empty(batch, n_routes, dim, n_state, dtype=dtype)
        states = torch.empty((batch, n_routes, n_chunks, n_state, dim) if save else
                             (1, 1, 1, 1, 1), dtype=dtype)
        (u_np, su), (dt_np, sdt) = _flat(u, 4), _flat(delta, 4)
        (b_np, sb), (c_np, sc) = _flat(B, 5), _flat(C, 5)
        (z_np, sz), (y_np, sy) = _flat(z, 3), _flat(y, 3)
        _run(_forward_programs, batch * groups * blocks, u_np, su, dt_np, sdt,
             _small(A, (1, 1, 1), dtype),
                 b_np, sb, c_np, sc, _small(D, (n_routes, dim), dtype),
                 _small(delta_bias, (n_routes, dim), dtype), z_np, sz, y_np, sy,
                 states.numpy(), last.numpy(), dims, z is not None, bool(delta_softplus), save)
        if save:
            ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, states)
        ctx.config = (dims, bool(delta_softplus))
        ctx.set_materialize_grads(False)
        return y, last

    @staticmethod
    def backward(ctx, dy, dlast):
        u, delta, A, B, C, D, z, delta_bias, states = ctx.saved_tensors
        dims, softplus = ctx.config
        batch, n_routes, dim, length, n_state, groups, *_, blocks, _ = dims
        dtype = u.dtype
        if dy is None:
            dy = torch.zeros(batch, dim, length, dtype=dtype)
        dy = dy.to(dtype)
        shared_u = u.shape[1] == 1 and n_routes > 1
        du = _like_layout(u, tuple(u.shape), dtype, zero=shared_u)
        ddelta = _like_layout(delta, tuple(delta.shape), dtype)
        dz = None if z is None else _like_layout(z, tuple(z.shape), dtype, zero=n_routes > 1)
        acc = torch.float64
        dA = torch.empty(batch, n_routes, dim, n_state, dtype=acc)
        dD = torch.empty(batch, n_routes, dim, dtype=acc)
        dbias = torch.empty(batch, n_routes, dim, dtype=acc)
        dBp = torch.empty(blocks, batch, n_routes, groups, length, n_state, dtype=dtype)
        dCp = torch.empty(blocks, batch, n_routes, groups, length, n_state, dtype=dtype)
        (u_np, su), (dt_np, sdt) = _flat(u, 4), _flat(delta, 4)
        (b_np, sb), (c_np, sc) = _flat(B, 5), _flat(C, 5)
        (z_np, sz), (dy_np, sdy) = _flat(z, 3), _flat(dy, 3)
        (du_np, sdu), (ddt_np, sddt) = _flat(du, 4), _flat(ddelta, 4)
        dz_np, sdz = _flat(dz, 3)
        dlast_np = (np.zeros((1, 1, 1, 1), states.numpy().dtype) if dlast is None
                    else dlast.detach().to(dtype).contiguous().numpy())
        _run(_backward_programs, batch * groups * blocks, u_np, su, dt_np, sdt,
             _small(A, (1, 1, 1), dtype),
                  b_np, sb, c_np, sc, _small(D, (n_routes, dim), dtype),
                  _small(delta_bias, (n_routes, dim), dtype), z_np, sz, dy_np, sdy,
                  states.numpy(), dlast_np, du_np, sdu, ddt_np, sddt, dA.numpy(), dBp.numpy(),
                  dCp.numpy(), dD.numpy(), dbias.numpy(), dz_np, sdz, dims, z is not None,
                  softplus, dlast is not None, shared_u)
        # fixed-order sums over channel blocks and batch: thread-count independent
        dB = dBp.sum(0).transpose(-1, -2)
        dC = dCp.sum(0).transpose(-1, -2)
        if B.shape[1] == 1 and n_routes > 1:
            dB = dB.sum(1, keepdim=True)
        if C.shape[1] == 1 and n_routes > 1:
            dC = dC.sum(1, keepdim=True)

        def param_grad(grad, like):
            return None if like is None else grad.sum(0).to(like.dtype).view_as(like)

        return (du, ddelta, param_grad(dA, A), dB, dC, param_grad(dD, D),
                dz, param_grad(dbias, delta_bias), None, None, None, None, None)


def routed_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                height=1, width=None, col_mask=0, rev_mask=0):
    """Run the fused CPU scan on canonical layouts (see :mod:`.routes`).

    Returns (y (batch, DIM, L) in u's dtype, last_state (batch, K, DIM, N) float32, or
    float64 for float64 inputs). fp16/bf16 inputs are read as float32 (one cast each).
    """
    if u.device.type != 'cpu':
        raise RuntimeError(f"backend='numba' runs on CPU tensors; got device {u.device}. "
                           "Use backend='triton' or 'torch' (or 'auto') for CUDA tensors.")
    dtype_in = u.dtype
    compute = torch.float64 if dtype_in == torch.float64 else torch.float32
    u, delta, A, B, C, D, z, delta_bias = (
        None if t is None else t.to(compute) for t in (u, delta, A, B, C, D, z, delta_bias))
    length = delta.shape[-1]
    y, last = RoutedScanNumba.apply(u, delta, A, B, C, D, z, delta_bias, bool(delta_softplus),
                                    int(height), int(length if width is None else width),
                                    int(col_mask), int(rev_mask))
    return y.to(dtype_in), last


def warm_up():
    """Compile (or load from the disk cache) the float32 kernels; returns the seconds taken."""
    start = time.perf_counter()
    u = torch.randn(1, 1, 2, 3, requires_grad=True)
    y, _ = routed_scan(u, torch.randn(1, 1, 2, 3), -torch.rand(1, 2, 1),
                       torch.randn(1, 1, 1, 1, 3), torch.randn(1, 1, 1, 1, 3),
                       z=torch.randn(1, 2, 3), delta_softplus=True)
    y.sum().backward()
    return time.perf_counter() - start

"""The routed scan on the GPU: Triton kernels, forward and backward.

Every operation is a set of K *routes* over one sequence of L positions (:mod:`mlla_kernels.routes`
maps each onto this layout with views only); route k visits, at step t, the position
``order[k, t]`` of a (K, L) int64 table (:func:`mlla_kernels.route_table`). The kernels read
every input at that position and write every output there, so no routed or flipped copy of any
tensor is made; routes that share an output (the merged y, a shared u or z) add into it
atomically.

Layouts (strides are passed, so views need no copies):
    u (batch, Ku, DIM, L) with Ku = 1 (shared by all routes) or K;  delta (batch, K, DIM, L);
    A (K, DIM, N);  B, C (batch, K, G, N, L);  D, delta_bias (K, DIM);  z (batch, DIM, L);
    y_k = (<C, h_k> + D_k u) * silu(z), summed over the routes into y (batch, DIM, L) when
    merged, else y (batch, K, DIM, L).

Each program owns one (batch, route, block of BLOCK_D channels) and walks its route in chunks
of CHUNK steps; inside a chunk the recurrence h_t = a_t h_{t-1} + b_t is an associative scan
(fp32). The forward pass stores the state at the end of every chunk, so the backward pass
recomputes each chunk from its starting state and runs the adjoint recurrence
dh_t = C_t g_t + a_{t+1} dh_{t+1} backwards, chunk by chunk. Every scan is a forward
``tl.associative_scan``: the adjoint's inputs are gathered in reverse step order (read from the
order table again) and its result flipped back, because ``reverse=True`` with a
non-commutative combine gives wrong results on GPUs (triton-lang/triton #4362, #8412) while
the interpreter gets it right.
"""
import os

import torch

import triton
import triton.language as tl


#: Overrides for the launch heuristics (tests shrink the chunk to exercise chunk borders).
TUNING = {'chunk': None, 'block_d': None, 'num_warps': None}


@triton.jit
def _add(a, b):
    return a + b


# tl.sum is a nested @jit function, which Triton's interpreter re-patches on every call
# (milliseconds each); tl.reduce with Triton's own sum combiner is the same reduction and
# takes the interpreter's numpy path.
_SUM_COMBINE = getattr(tl.standard, '_sum_combine', _add)


@triton.jit
def _xor(a, b):
    return a ^ b


# tl.flip's combiner (the backward kernel inlines tl.flip)
_XOR_COMBINE = getattr(tl.standard, '_xor_combine', _xor)


@triton.jit
def _linear_recurrence(a1, b1, a2, b2):
    # (a1, b1) is the earlier segment: h -> a2 * (a1 * h + b1) + b2
    return a1 * a2, b1 * a2 + b2


# Helpers are inlined by hand below: under TRITON_INTERPRET every call of a nested
# @triton.jit function re-patches triton.language (milliseconds each), which dominated the
# CPU test time.
#   softplus(x) = log1p(exp(x)) (x <= 20; Kahan's log1p, tl has none), x above 20 (torch's)


@triton.jit
def _scan_fwd_kernel(
        u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, bias_ptr, z_ptr, y_ptr, ckpt_ptr, order_ptr,
        su_b, su_k, su_d, su_l,
        sdt_b, sdt_k, sdt_d, sdt_l,
        sA_k, sA_d, sA_n,
        sB_b, sB_k, sB_g, sB_n, sB_l,
        sC_b, sC_k, sC_g, sC_n, sC_l,
        sD_k, sD_d, sbias_k, sbias_d,
        sz_b, sz_d, sz_l,
        sy_b, sy_k, sy_d, sy_l,
        L, DIM, K, CH_PER_GROUP, N_CHUNKS, N,
        BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, CHUNK: tl.constexpr,
        HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr,
        SOFTPLUS: tl.constexpr, ATOMIC_Y: tl.constexpr):
    pid_d = tl.program_id(0)
    pid_bk = tl.program_id(1)
    b = (pid_bk // K).to(tl.int64)
    k = (pid_bk % K).to(tl.int64)
    order_base = order_ptr + k * L
    group = (pid_d * BLOCK_D) // CH_PER_GROUP

    offs_d = (pid_d * BLOCK_D + tl.arange(0, BLOCK_D)).to(tl.int64)
    mask_d = offs_d < DIM
    offs_n = tl.arange(0, BLOCK_N).to(tl.int64)
    mask_n = offs_n < N
    mask_dn = mask_d[:, None] & mask_n[None, :]
    offs_t = tl.arange(0, CHUNK).to(tl.int64)
    first = (offs_t == 0)[None, None, :]
    last = (offs_t == CHUNK - 1)[None, None, :]

    A = tl.load(A_ptr + k * sA_k + offs_d[:, None] * sA_d + offs_n[None, :] * sA_n,
                mask=mask_dn, other=0.0).to(tl.float32)
    if HAS_D:
        Dv = tl.load(D_ptr + k * sD_k + offs_d * sD_d, mask=mask_d, other=0.0).to(tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + k * sbias_k + offs_d * sbias_d, mask=mask_d,
                       other=0.0).to(tl.float32)

    u_base = u_ptr + b * su_b + k * su_k + offs_d[:, None] * su_d
    dt_base = dt_ptr + b * sdt_b + k * sdt_k + offs_d[:, None] * sdt_d
    B_base = B_ptr + b * sB_b + k * sB_k + group * sB_g + offs_n[:, None] * sB_n
    C_base = C_ptr + b * sC_b + k * sC_k + group * sC_g + offs_n[:, None] * sC_n
    y_base = y_ptr + b * sy_b + k * sy_k + offs_d[:, None] * sy_d
    ckpt_base = (ckpt_ptr + ((b * K + k) * DIM + offs_d[:, None]) * N_CHUNKS * N
                 + offs_n[None, :])

    h = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    for c in range(N_CHUNKS):
        steps = c * CHUNK + offs_t
        mask_t = steps < L
        pos = tl.load(order_base + steps, mask=mask_t, other=0)
        mask_dt = mask_d[:, None] & mask_t[None, :]
        mask_nt = mask_n[:, None] & mask_t[None, :]
        u = tl.load(u_base + pos[None, :] * su_l, mask=mask_dt, other=0.0).to(tl.float32)
        dt = tl.load(dt_base + pos[None, :] * sdt_l, mask=mask_dt, other=0.0).to(tl.float32)
        if HAS_BIAS:
            dt = dt + bias[:, None]
        if SOFTPLUS:
            e = tl.exp(tl.minimum(dt, 20.0))
            w = 1.0 + e
            dt = tl.where(dt > 20.0, dt, tl.where(w == 1.0, e, tl.log(w) * (e / (w - 1.0))))
        dt = tl.where(mask_dt, dt, 0.0)
        Bt = tl.load(B_base + pos[None, :] * sB_l, mask=mask_nt, other=0.0).to(tl.float32)
        Ct = tl.load(C_base + pos[None, :] * sC_l, mask=mask_nt, other=0.0).to(tl.float32)

        decay = tl.exp(dt[:, None, :] * A[:, :, None])                    # (BD, BN, T)
        drive = (dt * u)[:, None, :] * Bt[None, :, :]
        drive = tl.where(first, drive + decay * h[:, :, None], drive)   # carry in
        _, hs = tl.associative_scan((decay, drive), axis=2, combine_fn=_linear_recurrence)
        h = tl.reduce(tl.where(last, hs, 0.0), 2, _SUM_COMBINE)    # padded steps keep h
        tl.store(ckpt_base + c * N, h, mask=mask_dn)

        y = tl.reduce(hs * Ct[None, :, :], 1, _SUM_COMBINE)        # (BD, T)
        if HAS_D:
            y += Dv[:, None] * u
        if HAS_Z:
            z = tl.load(z_ptr + b * sz_b + offs_d[:, None] * sz_d + pos[None, :] * sz_l,
                        mask=mask_dt, other=0.0).to(tl.float32)
            y = y * (z * (1.0 / (1.0 + tl.exp(-z))))
        if ATOMIC_Y:
            tl.atomic_add(y_base + pos[None, :] * sy_l, y, mask=mask_dt, sem='relaxed')
        else:
            tl.store(y_base + pos[None, :] * sy_l, y.to(y_ptr.dtype.element_ty), mask=mask_dt)


@triton.jit
def _scan_bwd_kernel(
        u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, bias_ptr, z_ptr, ckpt_ptr, order_ptr,
        dy_ptr, dlast_ptr,
        du_ptr, ddt_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dbias_ptr, dz_ptr,
        su_b, su_k, su_d, su_l,
        sdt_b, sdt_k, sdt_d, sdt_l,
        sA_k, sA_d, sA_n,
        sB_b, sB_k, sB_g, sB_n, sB_l,
        sC_b, sC_k, sC_g, sC_n, sC_l,
        sD_k, sD_d, sbias_k, sbias_d,
        sz_b, sz_d, sz_l,
        sdy_b, sdy_k, sdy_d, sdy_l,
        sdu_b, sdu_k, sdu_d, sdu_l,
        sddt_b, sddt_k, sddt_d, sddt_l,
        sdB_b, sdB_k, sdB_g, sdB_n, sdB_l,
        sdC_b, sdC_k, sdC_g, sdC_n, sdC_l,
        sdz_b, sdz_d, sdz_l,
        L, DIM, K, CH_PER_GROUP, N_CHUNKS, N,
        BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, CHUNK: tl.constexpr,
        HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr,
        SOFTPLUS: tl.constexpr, HAS_DLAST: tl.constexpr,
        ATOMIC_DU: tl.constexpr, ATOMIC_DZ: tl.constexpr, LOG2_CHUNK: tl.constexpr):
    pid_d = tl.program_id(0)
    pid_bk = tl.program_id(1)
    b = (pid_bk // K).to(tl.int64)
    k = (pid_bk % K).to(tl.int64)
    order_base = order_ptr + k * L
    group = (pid_d * BLOCK_D) // CH_PER_GROUP

    offs_d = (pid_d * BLOCK_D + tl.arange(0, BLOCK_D)).to(tl.int64)
    mask_d = offs_d < DIM
    offs_n = tl.arange(0, BLOCK_N).to(tl.int64)
    mask_n = offs_n < N
    mask_dn = mask_d[:, None] & mask_n[None, :]
    offs_t = tl.arange(0, CHUNK).to(tl.int64)
    first = (offs_t == 0)[None, None, :]
    last = (offs_t == CHUNK - 1)[None, None, :]

    A = tl.load(A_ptr + k * sA_k + offs_d[:, None] * sA_d + offs_n[None, :] * sA_n,
                mask=mask_dn, other=0.0).to(tl.float32)
    if HAS_D:
        Dv = tl.load(D_ptr + k * sD_k + offs_d * sD_d, mask=mask_d, other=0.0).to(tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + k * sbias_k + offs_d * sbias_d, mask=mask_d,
                       other=0.0).to(tl.float32)

    u_base = u_ptr + b * su_b + k * su_k + offs_d[:, None] * su_d
    dt_base = dt_ptr + b * sdt_b + k * sdt_k + offs_d[:, None] * sdt_d
    B_base = B_ptr + b * sB_b + k * sB_k + group * sB_g + offs_n[:, None] * sB_n
    C_base = C_ptr + b * sC_b + k * sC_k + group * sC_g + offs_n[:, None] * sC_n
    dy_base = dy_ptr + b * sdy_b + k * sdy_k + offs_d[:, None] * sdy_d
    du_base = du_ptr + b * sdu_b + k * sdu_k + offs_d[:, None] * sdu_d
    ddt_base = ddt_ptr + b * sddt_b + k * sddt_k + offs_d[:, None] * sddt_d
    dB_base = dB_ptr + b * sdB_b + k * sdB_k + group * sdB_g + offs_n[:, None] * sdB_n
    dC_base = dC_ptr + b * sdC_b + k * sdC_k + group * sdC_g + offs_n[:, None] * sdC_n
    state_offs = ((b * K + k) * DIM + offs_d[:, None]) * N + offs_n[None, :]
    ckpt_base = (ckpt_ptr + ((b * K + k) * DIM + offs_d[:, None]) * N_CHUNKS * N
                 + offs_n[None, :])

    if HAS_DLAST:
        dlast = tl.load(dlast_ptr + state_offs, mask=mask_dn, other=0.0).to(tl.float32)
    dA_acc = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    dD_acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
    dbias_acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
    dh_next = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)   # dh at the next chunk's 1st step
    for ci in range(N_CHUNKS):
        c = N_CHUNKS - 1 - ci
        steps = c * CHUNK + offs_t
        mask_t = steps < L
        pos = tl.load(order_base + steps, mask=mask_t, other=0)
        mask_dt = mask_d[:, None] & mask_t[None, :]
        mask_nt = mask_n[:, None] & mask_t[None, :]

        u = tl.load(u_base + pos[None, :] * su_l, mask=mask_dt, other=0.0).to(tl.float32)
        dt_raw = tl.load(dt_base + pos[None, :] * sdt_l, mask=mask_dt, other=0.0).to(tl.float32)
        if HAS_BIAS:
            dt_raw = dt_raw + bias[:, None]
        dt = dt_raw
        if SOFTPLUS:
            e = tl.exp(tl.minimum(dt_raw, 20.0))
            w = 1.0 + e
            dt = tl.where(dt_raw > 20.0, dt_raw,
                          tl.where(w == 1.0, e, tl.log(w) * (e / (w - 1.0))))
        dt = tl.where(mask_dt, dt, 0.0)
        Bt = tl.load(B_base + pos[None, :] * sB_l, mask=mask_nt, other=0.0).to(tl.float32)
        Ct = tl.load(C_base + pos[None, :] * sC_l, mask=mask_nt, other=0.0).to(tl.float32)

        # recompute the chunk's states from the checkpoint before it
        h0 = tl.load(ckpt_base + (c - 1) * N, mask=mask_dn & (c > 0), other=0.0)
        decay = tl.exp(dt[:, None, :] * A[:, :, None])
        drive = (dt * u)[:, None, :] * Bt[None, :, :]
        _, hs = tl.associative_scan(
            (decay, tl.where(first, drive + decay * h0[:, :, None], drive)),
            axis=2, combine_fn=_linear_recurrence)

        dout = tl.load(dy_base + pos[None, :] * sdy_l, mask=mask_dt, other=0.0).to(tl.float32)
        if HAS_Z:
            z = tl.load(z_ptr + b * sz_b + offs_d[:, None] * sz_d + pos[None, :] * sz_l,
                        mask=mask_dt, other=0.0).to(tl.float32)
            dz_ptrs = dz_ptr + b * sdz_b + offs_d[:, None] * sdz_d + pos[None, :] * sdz_l
            sig = (1.0 / (1.0 + tl.exp(-z)))
            y = tl.reduce(hs * Ct[None, :, :], 1, _SUM_COMBINE)
            if HAS_D:
                y += Dv[:, None] * u
            dz = dout * y * sig * (1.0 + z * (1.0 - sig))
            if ATOMIC_DZ:
                tl.atomic_add(dz_ptrs, dz, mask=mask_dt, sem='relaxed')
            else:
                tl.store(dz_ptrs, dz.to(dz_ptr.dtype.element_ty), mask=mask_dt)
            g = dout * z * sig
        else:
            g = dout
        if HAS_D:
            dD_acc += tl.reduce(g * u, 1, _SUM_COMBINE)
            du = Dv[:, None] * g
        else:
            du = tl.zeros((BLOCK_D, CHUNK), dtype=tl.float32)

        # Adjoint dh_t = C_t g_t + a_{t+1} dh_{t+1}: a recurrence backwards in time, run as a
        # FORWARD scan over the chunk's steps taken in reverse order -- lane j holds step
        # c*CHUNK + CHUNK-1-j, its inputs gathered at that step's position read from the same
        # order table. (tl.associative_scan(reverse=True) with this non-commutative
        # combine is wrong on GPUs, triton-lang/triton #4362 / #8412.)
        steps_r = c * CHUNK + (CHUNK - 1) - offs_t
        mask_r = steps_r < L
        mask_r_next = (steps_r + 1) < L
        pos_r = tl.load(order_base + steps_r, mask=mask_r, other=0)
        pos_r_next = tl.load(order_base + steps_r + 1, mask=mask_r_next, other=0)
        mask_dt_r = mask_d[:, None] & mask_r[None, :]
        mask_nt_r = mask_n[:, None] & mask_r[None, :]
        mask_dt_r_next = mask_d[:, None] & mask_r_next[None, :]

        dt_next = tl.load(dt_base + pos_r_next[None, :] * sdt_l, mask=mask_dt_r_next,
                          other=0.0).to(tl.float32)                     # delta at step t + 1
        if HAS_BIAS:
            dt_next = dt_next + bias[:, None]
        if SOFTPLUS:
            e = tl.exp(tl.minimum(dt_next, 20.0))
            w = 1.0 + e
            dt_next = tl.where(dt_next > 20.0, dt_next,
                               tl.where(w == 1.0, e, tl.log(w) * (e / (w - 1.0))))
        dt_next = tl.where(mask_dt_r_next, dt_next, 0.0)
        Ct_r = tl.load(C_base + pos_r[None, :] * sC_l, mask=mask_nt_r, other=0.0).to(tl.float32)
        g_r = tl.load(dy_base + pos_r[None, :] * sdy_l, mask=mask_dt_r,
                      other=0.0).to(tl.float32)
        if HAS_Z:
            z_r = tl.load(z_ptr + b * sz_b + offs_d[:, None] * sz_d + pos_r[None, :] * sz_l,
                          mask=mask_dt_r, other=0.0).to(tl.float32)
            g_r = g_r * z_r * (1.0 / (1.0 + tl.exp(-z_r)))
        decay_next = tl.exp(dt_next[:, None, :] * A[:, :, None])
        src = Ct_r[None, :, :] * g_r[:, None, :]
        if HAS_DLAST:
            src = tl.where((steps_r == L - 1)[None, None, :], src + dlast[:, :, None], src)
        src = tl.where(first, src + decay_next * dh_next[:, :, None], src)  # carry from t + 1
        _, dh_r = tl.associative_scan((decay_next, src), axis=2, combine_fn=_linear_recurrence)
        dh_next = tl.reduce(tl.where(last, dh_r, 0.0), 2, _SUM_COMBINE)   # at the chunk's 1st step
        # back to step order to meet the states: tl.flip's xor swaps, inlined
        bits = tl.reshape(dh_r.to(tl.int32, bitcast=True), [BLOCK_D, BLOCK_N] + [2] * LOG2_CHUNK)
        for i in tl.static_range(LOG2_CHUNK):
            bits = bits ^ tl.reduce(bits, 2 + i, _XOR_COMBINE, keep_dims=True)
        dh = tl.reshape(bits, (BLOCK_D, BLOCK_N, CHUNK)).to(tl.float32, bitcast=True)

        dC = tl.reduce(hs * g[:, None, :], 0, _SUM_COMBINE)
        tl.atomic_add(dC_base + pos[None, :] * sdC_l, dC, mask=mask_nt, sem='relaxed')
        dB = tl.reduce(dh * (dt * u)[:, None, :], 0, _SUM_COMBINE)
        tl.atomic_add(dB_base + pos[None, :] * sdB_l, dB, mask=mask_nt, sem='relaxed')
        dh_B = tl.reduce(dh * Bt[None, :, :], 1, _SUM_COMBINE)                 # (BD, T)
        du += dt * dh_B
        dh_carried = dh * (hs - drive)                        # dh_t * a_t * h_{t-1}
        ddt = u * dh_B + tl.reduce(A[:, :, None] * dh_carried, 1, _SUM_COMBINE)
        dA_acc += tl.reduce(dt[:, None, :] * dh_carried, 2, _SUM_COMBINE)
        if SOFTPLUS:
            ddt = ddt * (1.0 / (1.0 + tl.exp(-dt_raw)))
        ddt = tl.where(mask_dt, ddt, 0.0)
        if HAS_BIAS:
            dbias_acc += tl.reduce(ddt, 1, _SUM_COMBINE)
        tl.store(ddt_base + pos[None, :] * sddt_l, ddt.to(ddt_ptr.dtype.element_ty),
                 mask=mask_dt)
        if ATOMIC_DU:
            tl.atomic_add(du_base + pos[None, :] * sdu_l, du, mask=mask_dt, sem='relaxed')
        else:
            tl.store(du_base + pos[None, :] * sdu_l, du.to(du_ptr.dtype.element_ty),
                     mask=mask_dt)

    tl.atomic_add(dA_ptr + (k * DIM + offs_d[:, None]) * N + offs_n[None, :], dA_acc,
                  mask=mask_dn, sem='relaxed')
    if HAS_D:
        tl.atomic_add(dD_ptr + k * DIM + offs_d, dD_acc, mask=mask_d, sem='relaxed')
    if HAS_BIAS:
        tl.atomic_add(dbias_ptr + k * DIM + offs_d, dbias_acc, mask=mask_d, sem='relaxed')


def _interpreting() -> bool:
    return os.environ.get('TRITON_INTERPRET', '0') not in ('', '0')


def _vectorize_interpreter_scan():
    """Make the interpreter's generic ``tl.associative_scan`` combine whole slices.

    Triton's interpreter applies a custom combine function one element at a time in Python,
    which makes these kernels ~100x slower on CPU than they need to be. This replacement
    walks the scan axis only and combines every slice across the other axes at once; the
    order of combination along the axis is the same, so results are identical.
    Interpreter only; no effect on compiled kernels.
    """
    try:
        import numpy as np
        from triton.runtime import interpreter
        scan_ops = interpreter.ScanOps
    except (ImportError, AttributeError):
        return
    if getattr(scan_ops, '_mlla_vectorized', False) or not hasattr(scan_ops, 'generic_scan'):
        return

    def generic_scan(self, input):
        datas = [arg.handle.data for arg in input]
        outs = [np.empty_like(d) for d in datas]
        acc = None
        for i in range(datas[0].shape[self.axis]):
            cur = tuple(self.to_tensor(np.take(d, i, axis=self.axis), arg.dtype)
                        for d, arg in zip(datas, input))
            if acc is None:
                acc = cur
            else:
                ret = self.combine_fn.fn(*acc, *cur)
                acc = ret if isinstance(ret, tuple) else (ret,)
            index = (slice(None),) * self.axis + (i,)
            for out, value in zip(outs, acc):
                out[index] = np.reshape(value.handle.data, out[index].shape)
        return [self.to_tensor(o, arg.dtype) for o, arg in zip(outs, input)]

    scan_ops.generic_scan = generic_scan
    scan_ops._mlla_vectorized = True


if _interpreting():
    _vectorize_interpreter_scan()


def _chunk_len() -> int:
    return TUNING['chunk'] or (16 if _interpreting() else 64)


def _launch_config(dim: int, dim_per_group: int, block_n: int, batch_routes: int, device):
    """CHUNK, BLOCK_D of the forward and of the backward kernel, and num_warps.

    BLOCK_D is a power of two dividing the channels of one group. Heuristics, checked only
    by compiling for sm_90 (no GPU was at hand; override through TUNING): (BLOCK_D, BLOCK_N,
    CHUNK) fp32 tiles of <= 2048 elements in the forward and <= 512 in the backward, which
    keeps more tiles live (both then fit in 255 registers without spilling); channels per
    program halved until the grid has about two programs per SM.
    """
    interpreting = _interpreting()
    chunk = _chunk_len()
    block_ds = []
    for tile in (2048, 512):
        block_d = TUNING['block_d'] or max(1, min(8, tile // (block_n * chunk)))
        if not TUNING['block_d'] and not interpreting and device.type == 'cuda':
            num_sms = torch.cuda.get_device_properties(device).multi_processor_count
            while block_d > 1 and triton.cdiv(dim, block_d) * batch_routes < 2 * num_sms:
                block_d //= 2
        while dim_per_group % block_d:
            block_d //= 2
        block_ds.append(block_d)
    num_warps = TUNING['num_warps'] or 4
    return chunk, block_ds[0], block_ds[1], num_warps


def _strides(t, ndim):
    return tuple(t.stride()) if t is not None else (0,) * ndim


def _route_strides(t):
    """Strides of a (batch, K or 1, ...) tensor; a route dim of size 1 is shared (stride 0)."""
    strides = list(t.stride())
    if t.shape[1] == 1:
        strides[1] = 0
    return tuple(strides)


def saved_shapes(batch, n_routes, dim, length, n_state, compute):
    """What :func:`forward` saves for :func:`backward` (shapes and dtypes, for fake tensors):
    the state at the end of every chunk, (batch, K, DIM, n_chunks, N) float32."""
    return [((batch, n_routes, dim, -(-length // _chunk_len()), n_state), torch.float32)]


def forward(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
            order=None, merge=True, save=True):
    """The scan on the layouts above, no autograd. Returns (y in u's dtype: (batch, DIM, L)
    merged, else (batch, K, DIM, L); last_state (batch, K, DIM, N) float32; ``saved``: the
    list :func:`backward` needs, the chunk end states, :func:`saved_shapes`)."""
    batch, num_routes, dim, length = delta.shape
    n_state = A.shape[-1]
    groups = B.shape[2]
    block_n = triton.next_power_of_2(n_state)
    chunk, block_d, _, num_warps = _launch_config(
        dim, dim // groups, block_n, batch * num_routes, u.device)
    n_chunks = triton.cdiv(length, chunk)
    shared_out = merge and num_routes > 1
    y = (torch.zeros(batch, 1, dim, length, device=u.device, dtype=torch.float32)
         if shared_out else
         torch.empty(batch, 1 if merge else num_routes, dim, length, device=u.device,
                     dtype=u.dtype))
    ckpt = torch.empty(batch, num_routes, dim, n_chunks, n_state, device=u.device,
                       dtype=torch.float32)
    order = order.to(device=u.device, dtype=torch.int64).contiguous()
    grid = (triton.cdiv(dim, block_d), batch * num_routes)
    _scan_fwd_kernel[grid](
        u, delta, A, B, C, D, delta_bias, z, y, ckpt, order,
        *_route_strides(u), *delta.stride(), *A.stride(), *_route_strides(B),
        *_route_strides(C),
        *_strides(D, 2), *_strides(delta_bias, 2), *_strides(z, 3), *_route_strides(y),
        length, dim, num_routes, dim // groups, n_chunks, n_state,
        BLOCK_N=block_n, BLOCK_D=block_d, CHUNK=chunk,
        HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
        SOFTPLUS=bool(delta_softplus), ATOMIC_Y=shared_out, num_warps=num_warps)
    last_state = ckpt[:, :, :, -1].clone()
    y = y.to(u.dtype)
    return (y[:, 0] if merge else y), last_state, [ckpt]


def backward(dy, dlast, saved, u, delta, A, B, C, D=None, z=None, delta_bias=None,
             delta_softplus=False, order=None, merge=True):
    """Gradients of :func:`forward`'s (y, last_state) with respect to u, delta, A, B, C, D, z
    and delta_bias (None for a missing input), each in its input's dtype; ``dy``/``dlast``
    may be None (no gradient), ``saved`` is what the forward returned."""
    ckpt, = saved
    batch, num_routes, dim, length = delta.shape
    n_state = A.shape[-1]
    groups = B.shape[2]
    n_chunks = ckpt.shape[3]
    chunk, _, block_d, num_warps = _launch_config(
        dim, dim // groups, triton.next_power_of_2(n_state), batch * num_routes, u.device)
    order = order.to(device=u.device, dtype=torch.int64).contiguous()
    if dy is None:
        dy = torch.zeros(batch, dim, length, device=u.device, dtype=u.dtype)
    if dy.dim() == 3:    # merged: every route reads the one dy
        dy = dy.unsqueeze(1)
    if dlast is not None:
        dlast = dlast.contiguous()
    f32 = dict(device=u.device, dtype=torch.float32)
    shared_u = u.shape[1] == 1 and num_routes > 1
    shared_z = num_routes > 1
    du = (torch.zeros(u.shape, **f32) if shared_u
          else torch.empty(u.shape, device=u.device, dtype=u.dtype))
    ddelta = torch.empty(delta.shape, device=u.device, dtype=delta.dtype)
    dA = torch.zeros(A.shape, **f32)
    dB = torch.zeros(B.shape, **f32)
    dC = torch.zeros(C.shape, **f32)
    dD = torch.zeros(num_routes, dim, **f32) if D is not None else None
    dbias = torch.zeros(num_routes, dim, **f32) if delta_bias is not None else None
    dz = None
    if z is not None:
        dz = (torch.zeros(z.shape, **f32) if shared_z
              else torch.empty(z.shape, device=u.device, dtype=z.dtype))
    grid = (triton.cdiv(dim, block_d), batch * num_routes)
    _scan_bwd_kernel[grid](
        u, delta, A, B, C, D, delta_bias, z, ckpt, order, dy, dlast,
        du, ddelta, dA, dB, dC, dD, dbias, dz,
        *_route_strides(u), *delta.stride(), *A.stride(), *_route_strides(B),
        *_route_strides(C), *_strides(D, 2), *_strides(delta_bias, 2), *_strides(z, 3),
        *_route_strides(dy), *_route_strides(du), *ddelta.stride(), *_route_strides(dB),
        *_route_strides(dC), *_strides(dz, 3),
        length, dim, num_routes, dim // groups, n_chunks, n_state,
        BLOCK_N=triton.next_power_of_2(n_state), BLOCK_D=block_d, CHUNK=chunk,
        HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
        SOFTPLUS=bool(delta_softplus), HAS_DLAST=dlast is not None,
        ATOMIC_DU=shared_u, ATOMIC_DZ=shared_z, LOG2_CHUNK=chunk.bit_length() - 1,
        num_warps=num_warps)

    def cast(grad, like):
        return None if grad is None else grad.to(like.dtype)

    return (cast(du, u), ddelta, cast(dA, A), cast(dB, B), cast(dC, C), cast(dD, D),
            cast(dz, z), cast(dbias, delta_bias))


class RoutedScan(torch.autograd.Function):
    """Autograd wrapper of :func:`forward` and :func:`backward` (direct use of the engine;
    the entry points run it through the ``mlla_kernels::routed_scan`` operator,
    :mod:`mlla_kernels.library`).

    forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus, order, merge)
    -> (y in u's dtype: (batch, DIM, L) merged, else (batch, K, DIM, L);
    last_state (batch, K, DIM, N) float32).
    """

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus, order, merge):
        y, last, saved = forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus, order,
                                 merge)
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
    """Run the routed scan kernels on the layouts of the module docstring (inputs validated by
    the entry points), with autograd.

    Returns (y in u's dtype: (batch, DIM, L) merged, else (batch, K, DIM, L); last_state
    (batch, K, DIM, N) float32).
    """
    return RoutedScan.apply(u, delta, A, B, C, D, z, delta_bias, bool(delta_softplus), order,
                            bool(merge))

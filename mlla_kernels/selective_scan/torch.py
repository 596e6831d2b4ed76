"""Selective scan in plain PyTorch: a chunked scan with a hand-written backward.

The recurrence h_t = a_t * h_{t-1} + x_t (a_t = exp(delta_t * A), x_t = delta_t * B_t * u_t)
is linear, so it is computed in three levels, none of which loops over every time step:

1. **Blocks** of ``block_len`` steps are processed one after the other, carrying the state.
   Only one block's (batch, D, chunks, chunk_len, N) intermediates exist at a time (bounded
   memory, small enough to stay in cache); the backward recomputes them from the block's saved
   start state instead of keeping them.
2. Inside a block, every **chunk** of ``chunk_len`` steps is scanned from a zero state at once
   by Hillis-Steele doubling along the (contiguous) time axis: log2(chunk_len) vector steps.
3. The chunk end states are chained by the same doubling scan over the chunk axis, and each
   chunk's true start state is added back, scaled by the running product of ``a``.

Stability: only products of the ``a_t`` are formed, never exp of a cumulative sum nor a
division by a product, so nothing overflows when the decay is strong (a product underflows
to 0, which is the right limit). State and accumulation are float32 (float64 for float64 inputs).

Backward: the adjoint g_t = dL/dh_t obeys the reversed recurrence g_t = a_{t+1} g_{t+1} + C_t dy_t,
computed with the same three levels in reverse; then dx_t = g_t and
dL/d(delta_t A) = g_t a_t h_{t-1} = g_t (h_t - x_t).
"""
from typing import Optional

import torch
import torch.nn.functional as F

# Elements (batch * D * N * steps) of one block's intermediates: ~1 MiB per float32 tensor.
BLOCK_ELEMENTS = 1 << 18
# The forward keeps its states for the backward (saving their recomputation, ~1/4 of the
# backward) when they total at most this many elements (128 MiB in float32); else recomputes.
KEEP_STATES_ELEMENTS = 1 << 25


def _plan(length: int, n_state: int, step_elems: int, block_len: Optional[int],
          chunk_len: Optional[int]):
    """Pick (block_len, chunk_len), block_len a multiple of chunk_len.

    Defaults were tuned on a 2-core x86 CPU (see docs/kernels.md): blocks of ~1 MiB per float32
    intermediate, chunks of 32 steps for N = 1 and 16 for larger N.
    """
    if chunk_len is None:
        chunk_len = 32 if n_state == 1 else 16
    if block_len is None:
        block_len = max(chunk_len, BLOCK_ELEMENTS // max(step_elems, 1))
    block_len = max(1, min(block_len, length))
    chunk_len = max(1, min(chunk_len, block_len))
    block_len = -(-block_len // chunk_len) * chunk_len
    return block_len, chunk_len


class _Block:
    """One block of ``steps`` time steps as (batch, G, D/G, chunks, T[, N]) views.

    The block is zero-padded to whole chunks with delta = 0, i.e. a = 1 and x = 0: the state
    passes through the padding unchanged.
    """

    def __init__(self, u, delta, A, Bt, Ct, start, stop, chunk_len):
        batch, dim, _ = u.shape
        groups, n_state = Bt.shape[1], Bt.shape[3]
        self.start, self.stop, self.steps = start, stop, stop - start
        self.pad = -self.steps % chunk_len
        self.n_chunks = (self.steps + self.pad) // chunk_len
        self.dim_shape = (batch, groups, dim // groups, self.n_chunks, chunk_len)
        self.u = self.chunked(u)                                        # (b, G, Dg, c, T)
        self.delta = self.chunked(delta)
        self.B = self.chunked(Bt, state=True)                           # (b, G, 1, c, T, N)
        self.C = self.chunked(Ct, state=True)
        self.A = A.view(groups, dim // groups, 1, 1, n_state)            # (G, Dg, 1, 1, N)
        self.shape = self.dim_shape + (n_state,)

    def chunked(self, t, state=False):
        """(b, D, L) -> (b, G, Dg, c, T); (b, G, L, N) -> (b, G, 1, c, T, N)."""
        if state:
            t = t[:, :, self.start:self.stop]
            if self.pad:
                t = F.pad(t, (0, 0, 0, self.pad))
            return t.reshape(self.dim_shape[:2] + (1,) + self.dim_shape[3:] + (t.shape[-1],))
        t = t[..., self.start:self.stop]
        if self.pad:
            t = F.pad(t, (0, self.pad))
        return t.reshape(self.dim_shape)

    def scatter(self, dst, src, state=False):
        """dst[..., start:stop] = src (b, G, Dg, c, T) without padding.

        With ``state``: dst (b, G, L, N) from src (b, G, c, T, N).
        """
        if not state:
            src = src.reshape(dst.shape[0], dst.shape[1], -1)
            dst[..., self.start:self.stop] = src[..., :self.steps]
        else:
            src = src.reshape(dst.shape[0], dst.shape[1], -1, dst.shape[3])
            dst[:, :, self.start:self.stop] = src[:, :, :self.steps]

    def decay_and_input(self):
        """a = exp(delta A) and x = delta B u, both (b, G, Dg, c, T, N), contiguous."""
        a = torch.mul(self.delta.unsqueeze(-1), self.A).exp_()
        x = torch.mul((self.delta * self.u).unsqueeze(-1), self.B)
        return a, x


def _doubling_scan(coef, val, dim, reverse=False):
    """Zero-start linear scan along ``dim`` by Hillis-Steele doubling (log2(n) vector steps).

    Forward: val_t <- val_t + coef_t * val_{t-1} (running), coef_t <- prod_{s<=t} coef_s.
    Reverse: val_t <- val_t + coef_t * val_{t+1}, coef_t <- prod_{s>=t} coef_s.
    Both inputs are overwritten; returns the (val, coef) results (possibly in fresh buffers).
    Only products of coefficients are formed: nothing overflows that the recurrence keeps finite.
    """
    n = val.shape[dim]
    val_alt, coef_alt = torch.empty_like(val), torch.empty_like(coef)
    k = 1
    while k < n:
        # positions that read no partner this step keep their value; the alternate buffer
        # already holds positions settled before the previous step
        if reverse:
            head, tail, keep = (0, n - k), (k, n - k), (n - k, k - k // 2)
        else:
            head, tail, keep = (k, n - k), (0, n - k), (k // 2, k - k // 2)
        torch.addcmul(val.narrow(dim, *head), coef.narrow(dim, *head), val.narrow(dim, *tail),
                      out=val_alt.narrow(dim, *head))
        torch.mul(coef.narrow(dim, *head), coef.narrow(dim, *tail), out=coef_alt.narrow(dim, *head))
        val_alt.narrow(dim, *keep).copy_(val.narrow(dim, *keep))
        coef_alt.narrow(dim, *keep).copy_(coef.narrow(dim, *keep))
        val, val_alt, coef, coef_alt = val_alt, val, coef_alt, coef
        k *= 2
    return val, coef


def _scan_forward(a, x, h0):
    """States h_t of one block: doubling scans inside every chunk, then across chunks.

    a, x: (b, G, Dg, c, T, N), both overwritten. h0: (b, G, Dg, N), the state before the block.
    Returns (h, state after the block).
    """
    h, prod = _doubling_scan(a, x, dim=4)
    # chunk chain: S_c = prod_end_c * S_{c-1} + end_c, then add h0's share
    ends, decays = _doubling_scan(prod[..., -1, :].clone(), h[..., -1, :].clone(), dim=3)
    h0 = h0.unsqueeze(3)
    carry = torch.empty_like(ends)
    carry[:, :, :, :1] = h0
    torch.addcmul(ends[:, :, :, :-1], decays[:, :, :, :-1], h0, out=carry[:, :, :, 1:])
    state = torch.addcmul(ends[:, :, :, -1:], decays[:, :, :, -1:], h0).squeeze(3)
    h.addcmul_(prod, carry.unsqueeze(-2))
    return h, state


def _scan_backward(m, g, g_next, a_first):
    """dL/dh_t of one block from g = C_t dy_t (g_t += a_{t+1} g_{t+1}), by reversed doubling.

    m: a shifted left by one step inside each chunk (m_t = a_{t+1}, 1 at the chunk end);
    m and g are overwritten. g_next: a_{t+1} g_{t+1} of the step after the block (b, G, Dg, N);
    a_first: a at each chunk's first step (b, G, Dg, c, N).
    Returns (dL/dh, a_first * g_first for the block before).
    """
    g, suffix = _doubling_scan(m, g, dim=4, reverse=True)   # suffix_t = prod_{s>t} a_s
    # chunk chain backwards: E_{c-1} = a_first_c * (g_first_c + suffix_first_c * E_c)
    outs, decays = _doubling_scan(a_first * suffix[..., 0, :], a_first * g[..., 0, :], dim=3,
                                  reverse=True)
    g_next = g_next.unsqueeze(3)
    carry = torch.empty_like(outs)
    carry[:, :, :, -1:] = g_next
    torch.addcmul(outs[:, :, :, 1:], decays[:, :, :, 1:], g_next, out=carry[:, :, :, :-1])
    state = torch.addcmul(outs[:, :, :, :1], decays[:, :, :, :1], g_next).squeeze(3)
    g.addcmul_(suffix, carry.unsqueeze(-2))
    return g, state


def _blocks(length, block_len):
    return [(s, min(s + block_len, length)) for s in range(0, length, block_len)]


class SelectiveScanCore(torch.autograd.Function):
    """y_t = <C_t, h_t> over the recurrence; inputs in the compute dtype, B/C grouped 4-D."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, block_len, chunk_len):
        batch, dim, length = u.shape
        groups, n_state = B.shape[1], B.shape[2]
        Bt, Ct = B.transpose(-1, -2).contiguous(), C.transpose(-1, -2).contiguous()
        y = u.new_empty(batch, dim, length)
        state = u.new_zeros(batch, groups, dim // groups, n_state)
        starts, kept = [], []
        keep = (any(ctx.needs_input_grad[:5])
                and batch * dim * length * n_state <= KEEP_STATES_ELEMENTS)
        for start, stop in _blocks(length, block_len):
            starts.append(state)
            blk = _Block(u, delta, A, Bt, Ct, start, stop, chunk_len)
            a, x = blk.decay_and_input()
            h, state = _scan_forward(a, x, state)
            blk.scatter(y, _contract_state(h, blk.C))
            if keep:
                kept.append(h)
        ctx.save_for_backward(u, delta, A, Bt, Ct, *starts, *kept)
        ctx.plan = (block_len, chunk_len, len(starts))
        return y, state.reshape(batch, dim, n_state)

    @staticmethod
    def backward(ctx, dy, dlast):
        u, delta, A, Bt, Ct, *saved = ctx.saved_tensors
        block_len, chunk_len, n_blocks = ctx.plan
        starts, kept = saved[:n_blocks], saved[n_blocks:]
        batch, dim, length = u.shape
        groups, n_state = Bt.shape[1], Bt.shape[3]
        du, ddelta = torch.empty_like(u), torch.empty_like(u)
        dBt, dCt = torch.empty_like(Bt), torch.empty_like(Ct)
        dA = torch.zeros_like(A).view(groups, dim // groups, n_state)
        if dy is None:
            dy = torch.zeros_like(u)
        g_next = (torch.zeros_like(starts[0]) if dlast is None
                  else dlast.to(u.dtype).reshape(starts[0].shape))
        for i in reversed(range(n_blocks)):
            start, stop = i * block_len, min((i + 1) * block_len, length)
            blk = _Block(u, delta, A, Bt, Ct, start, stop, chunk_len)
            a, x = blk.decay_and_input()
            a_first = a[..., 0, :].clone()
            m = torch.empty_like(a)
            m[..., :-1, :] = a[..., 1:, :]
            m[..., -1, :] = 1
            h = kept[i] if kept else _scan_forward(a, x.clone(), starts[i])[0]
            del a
            dy_b = blk.chunked(dy)                                      # (b, G, Dg, c, T)
            g = torch.mul(dy_b.unsqueeze(-1), blk.C)                     # (b, G, Dg, c, T, N)
            g, g_next = _scan_backward(m, g, g_next, a_first)
            del m
            blk.scatter(dCt, _reduce_channels(h, dy_b), state=True)
            blk.scatter(dBt, _reduce_channels(g, blk.delta * blk.u), state=True)
            ddu = _contract_state(g, blk.B)                               # dL/d(delta*u)
            # dL/d(delta*A) = g_t * a_t * h_{t-1} = g_t * (h_t - x_t)
            dlog = torch.sub(h, x, out=x).mul_(g)
            del g, h
            dA += (dlog * blk.delta.unsqueeze(-1)).sum((0, 3, 4))
            ddelta_b = _contract_state(dlog, blk.A)
            del dlog
            ddelta_b += ddu * blk.u
            blk.scatter(ddelta, ddelta_b)
            blk.scatter(du, ddu * blk.delta)
        dB, dC = dBt.transpose(-1, -2), dCt.transpose(-1, -2)
        return du, ddelta, dA.view(dim, n_state), dB, dC, None, None


def _contract_state(h, c):
    """sum over N of h * c: (..., N) -> (...)."""
    if h.shape[-1] == 1:
        return (h * c).squeeze(-1)
    return (h * c).sum(-1)


def _reduce_channels(g, w):
    """Sum over the group's channels of g * w.

    g (b, G, Dg, c, T, N), w (b, G, Dg, c, T) -> (b, G, c, T, N).
    """
    return (g * w.unsqueeze(-1)).sum(2)


def selective_scan_torch(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor,
                         B: torch.Tensor, C: torch.Tensor, D: Optional[torch.Tensor] = None,
                         z: Optional[torch.Tensor] = None,
                         delta_bias: Optional[torch.Tensor] = None,
                         delta_softplus: bool = False, return_last_state: bool = False,
                         reverse: bool = False, *, block_len: Optional[int] = None,
                         chunk_len: Optional[int] = None):
    """Chunked PyTorch selective scan; see :func:`mlla_kernels.selective_scan` for shapes.

    Args (beyond the public ones):
        reverse: scan from t = L-1 down to 0.
        block_len: time steps per block (default: ~``BLOCK_ELEMENTS`` elements per block).
        chunk_len: time steps per chunk within a block (default: ~sqrt(block_len), at most 64).
    """
    dtype_in = u.dtype
    compute = torch.float64 if dtype_in == torch.float64 else torch.float32
    u_c, delta_c = u.to(compute), delta.to(compute)
    if delta_bias is not None:
        delta_c = delta_c + delta_bias.to(compute)[:, None]
    if delta_softplus:
        delta_c = F.softplus(delta_c)
    B4 = B if B.dim() == 4 else B.unsqueeze(1)
    C4 = C if C.dim() == 4 else C.unsqueeze(1)
    B4, C4, A_c = B4.to(compute), C4.to(compute), A.to(compute)
    if reverse:
        u_s, delta_s, B4, C4 = (t.flip(-1) for t in (u_c, delta_c, B4, C4))
    else:
        u_s, delta_s = u_c, delta_c
    batch, dim, length = u.shape
    blen, clen = _plan(length, A.shape[1], batch * dim * A.shape[1], block_len, chunk_len)
    y, last = SelectiveScanCore.apply(u_s, delta_s, A_c, B4, C4, blen, clen)
    if reverse:
        y = y.flip(-1)
    if D is not None:
        y = y + D.to(compute)[:, None] * u_c
    if z is not None:
        y = y * F.silu(z.to(compute))
    y = y.to(dtype_in)
    return (y, last) if return_last_state else y

"""The three operations as *routes* of one scan: their arguments in the fused kernels' layout.

A fused backend (``numba``; Triton's kernels use the same layout) implements one routed scan:
u (batch, Ku, DIM, L) with Ku = 1 (shared by all routes) or K; delta (batch, K, DIM, L);
A (K, DIM, N); B, C (batch, K, G, N, L); D, delta_bias (K, DIM); z (batch, DIM, L); route k
visits, at step t, position ``s = L-1-t`` if bit k of ``rev_mask`` is set (else ``t``), then
``(s % H) * W + s // H`` if bit k of ``col_mask`` is set (else ``s``); and
y (batch, DIM, L) = sum over routes of (<C, h_k> + D_k u) * silu(z).

Each function below maps one public operation's (already validated) arguments to that form
with views only -- no tensor is copied, routed or flipped.
"""

#: VMamba v2's route order, as (column-major mask, reversed mask): K=4: row-major,
#: column-major, reversed row-major, reversed column-major; K=2: row-major and its reverse.
CROSS_SCAN_MASKS = {1: (0b0000, 0b0000), 2: (0b0000, 0b0010), 4: (0b1010, 0b1100)}


def _optional(t, fn):
    return None if t is None else fn(t)


def selective_scan_routes(u, delta, A, B, C, D=None, z=None, delta_bias=None, reverse=False):
    """One route over L steps, forward or (``reverse``) backward in time."""
    def grouped(t):  # (batch, N, L) or (batch, G, N, L) -> (batch, 1, G, N, L)
        return (t.unsqueeze(1) if t.dim() == 3 else t).unsqueeze(1)
    return dict(u=u.unsqueeze(1), delta=delta.unsqueeze(1), A=A.unsqueeze(0), B=grouped(B),
                C=grouped(C), D=_optional(D, lambda t: t.unsqueeze(0)), z=z,
                delta_bias=_optional(delta_bias, lambda t: t.unsqueeze(0)),
                rev_mask=int(bool(reverse)))


def cross_scan_routes(u, delta, A, B, C, D=None, delta_bias=None, directions=4):
    """VMamba's K routes over the (H, W) map, all reading the one map u."""
    batch, dim, height, width = u.shape
    k, length, n_state = directions, height * width, A.shape[1]
    col_mask, rev_mask = CROSS_SCAN_MASKS[k]
    return dict(u=u.reshape(batch, 1, dim, length), delta=delta.reshape(batch, k, dim, length),
                A=A.reshape(k, dim, n_state), B=B.reshape(batch, k, 1, n_state, length),
                C=C.reshape(batch, k, 1, n_state, length),
                D=_optional(D, lambda t: t.reshape(k, dim)),
                delta_bias=_optional(delta_bias, lambda t: t.reshape(k, dim)),
                height=height, width=width, col_mask=col_mask, rev_mask=rev_mask)


def bidirectional_routes(u, delta, A, B, C, D=None, z=None, delta_bias=None):
    """Vim's two routes: [:, 0] forward in time, [:, 1] backward, sharing the gate z."""
    return dict(u=u, delta=delta, A=A, B=B.unsqueeze(2), C=C.unsqueeze(2), D=D, z=z,
                delta_bias=delta_bias, rev_mask=0b10)

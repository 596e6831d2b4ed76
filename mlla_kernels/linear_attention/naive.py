"""The reference: MLLA's linear attention written with PyTorch ops, step by step.

For a map of n = H*W tokens, C channels in ``num_heads`` heads of d = C / num_heads::

    q, k   = ELU(qk[..., :C]) + 1, ELU(qk[..., C:]) + 1
    q~, k~ = RoPE-2D(q), RoPE-2D(k)                 (over all C channels)
    z_i    = 1 / (q_i . mean_j k_j + 1e-6)          (per head, un-rotated q, k)
    attn_i = q~_i (k~^T v / n) z_i                   (per head)
    y      = (attn + LePE(v)) * SiLU(gate)           (LePE: depthwise conv of v + bias)
"""
import torch
import torch.nn.functional as F


def rotate_pairs(x, cos, sin):
    """RoPE: channel pair (2p, 2p+1) of each token as a complex number times e^{i theta}."""
    pairs = x.unflatten(-1, (-1, 2))  # not reshape(..., -1, 2): its size inference is slow on symbolic shapes
    real, imag = pairs[..., 0], pairs[..., 1]
    return torch.stack([real * cos - imag * sin, imag * cos + real * sin], dim=-1).flatten(-2)


def linear_attention_core(qk, v, rope_cos, rope_sin, num_heads, rope_in_float=False):
    """The attention term (before LePE and the gate), (batch, H, W, C). ``rope_in_float``
    rotates in float32 (float64 for float64) and casts back, as MLLA's layer does; else the
    rotation runs in the inputs' dtype."""
    batch, height, width, channels = v.shape
    n = height * width
    heads, head_dim = num_heads, channels // num_heads
    tokens = v.reshape(batch, n, channels)
    q, k = qk.reshape(batch, n, 2 * channels).chunk(2, dim=-1)
    q = F.elu(q) + 1.0
    k = F.elu(k) + 1.0
    rope_dtype = v.dtype
    if rope_in_float:
        rope_dtype = torch.float64 if v.dtype == torch.float64 else torch.float32
    cos = rope_cos.reshape(n, -1).to(rope_dtype)
    sin = rope_sin.reshape(n, -1).to(rope_dtype)
    q_rope = rotate_pairs(q.to(rope_dtype), cos, sin).to(q.dtype)
    k_rope = rotate_pairs(k.to(rope_dtype), cos, sin).to(k.dtype)

    def split_heads(t):
        return t.reshape(batch, n, heads, head_dim).transpose(1, 2)

    q, k, vh, q_rope, k_rope = map(split_heads, (q, k, tokens, q_rope, k_rope))
    # normaliser from the un-rotated q, k (RoPE would make it sign-indefinite)
    z = 1 / (q @ k.mean(dim=-2, keepdim=True).transpose(-2, -1) + 1e-6)
    # 1/n as two 1/sqrt(n) factors, as upstream (keeps k^T v small in fp16)
    scale = n ** -0.5
    kv = (k_rope.transpose(-2, -1) * scale) @ (vh * scale)
    return (q_rope @ kv * z).transpose(1, 2).reshape(batch, height, width, channels)


def linear_attention_naive(qk, v, rope_cos, rope_sin, num_heads, lepe_weight=None,
                           lepe_bias=None, gate=None):
    """See :func:`mlla_kernels.linear_attention`; computes in the inputs' dtype (the RoPE
    tables are cast to it); LePE as a sum of shifted copies."""
    out = linear_attention_core(qk, v, rope_cos, rope_sin, num_heads)
    if lepe_weight is not None:
        from ..depthwise_conv.naive import depthwise_conv2d_naive
        out = out + depthwise_conv2d_naive(v, lepe_weight, lepe_bias)
    if gate is not None:
        out = out * F.silu(gate)
    return out

"""The PyTorch formulation (runs anywhere; what CUDA tensors use, and what a traced or compiled
graph records): the layer's ops, with the RoPE rotation in float32 (float64 for float64) so
half-precision runs keep the position signal of large row/column indices."""
import torch.nn.functional as F

from .naive import linear_attention_core


def linear_attention_torch(qk, v, rope_cos, rope_sin, num_heads, lepe_weight=None,
                           lepe_bias=None, gate=None):
    """See :func:`mlla_kernels.linear_attention`."""
    out = linear_attention_core(qk, v, rope_cos, rope_sin, num_heads, rope_in_float=True)
    if lepe_weight is not None:
        kh, kw = lepe_weight.shape[-2:]
        lepe = F.conv2d(v.permute(0, 3, 1, 2), lepe_weight.unsqueeze(1), lepe_bias,
                        padding=(kh // 2, kw // 2), groups=v.shape[-1])
        out = out + lepe.permute(0, 2, 3, 1)
    if gate is not None:
        out = out * F.silu(gate)
    return out

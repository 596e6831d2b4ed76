"""The readable reference: every tap a shifted copy of the zero-padded input, summed."""
import torch
import torch.nn.functional as F

from . import kernel_paddings


def depthwise_conv2d_naive(x, weight, bias=None, padding=None, activation=None,
                           residual=False):
    """out[b, (k,) h, w, c] = act(bias[(k,) c] + sum_ij weight[(k,) c, i, j]
    x[b, h + i - top_k, w + j - left_k, c]) (+ x), zeros outside the map; see
    :func:`mlla_kernels.depthwise_conv2d`. Computes in the inputs' dtype."""
    single = weight.dim() == 3
    kernels = weight.unsqueeze(0) if single else weight
    biases = None if bias is None else (bias.unsqueeze(0) if single else bias)
    n_kernels, _, kh, kw = kernels.shape
    height, width = x.shape[1:3]
    outs = []
    for k, (top, left) in enumerate(kernel_paddings(padding, n_kernels, kh, kw)):
        padded = F.pad(x, (0, 0, left, kw - 1 - left, top, kh - 1 - top))
        out = torch.zeros_like(x) if biases is None else biases[k].expand_as(x).clone()
        for i in range(kh):
            for j in range(kw):
                out = out + padded[:, i:i + height, j:j + width] * kernels[k, :, i, j]
        if activation == 'silu':
            out = F.silu(out)
        outs.append(out + x if residual else out)
    return outs[0] if single else torch.stack(outs, 1)

"""PyTorch's convolution on the channels-last view (runs anywhere; what CUDA tensors use)."""
import torch
import torch.nn.functional as F

from . import kernel_paddings


def depthwise_conv2d_torch(x, weight, bias=None, padding=None, activation=None,
                           residual=False):
    """:func:`mlla_kernels.depthwise_conv2d` with ``F.conv2d`` (groups = channels) on the
    (batch, C, H, W) view of x (channels-last memory: no copy)."""
    single = weight.dim() == 3
    kernels = weight.unsqueeze(0) if single else weight
    biases = None if bias is None else (bias.unsqueeze(0) if single else bias)
    n_kernels, channels, kh, kw = kernels.shape
    maps = x.permute(0, 3, 1, 2)
    outs = []
    for k, (top, left) in enumerate(kernel_paddings(padding, n_kernels, kh, kw)):
        pads = (left, kw - 1 - left, top, kh - 1 - top)
        if pads[0] == pads[1] and pads[2] == pads[3]:
            out = F.conv2d(maps, kernels[k].unsqueeze(1), None if biases is None else biases[k],
                           padding=(top, left), groups=channels)
        else:
            out = F.conv2d(F.pad(maps, pads), kernels[k].unsqueeze(1),
                           None if biases is None else biases[k], groups=channels)
        out = out.permute(0, 2, 3, 1)
        if activation == 'silu':
            out = F.silu(out)
        outs.append(out + x if residual else out)
    return outs[0] if single else torch.stack(outs, 1)

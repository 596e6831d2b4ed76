"""Small layers shared by several backbones (no mmcv import: backbones need torch + mmengine only)."""
import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn
from torch.utils.checkpoint import checkpoint


def drop_path(x: torch.Tensor, drop_prob: float = 0.0, training: bool = False) -> torch.Tensor:
    """Stochastic depth per sample (residual branch dropped with prob ``drop_prob``)."""
    if drop_prob == 0.0 or not training:
        return x
    keep = 1.0 - drop_prob
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    mask = x.new_empty(shape).bernoulli_(keep)
    return x * mask / keep


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad a map ``(..., H, W)`` right and bottom to multiples of ``multiple``.

    A map that needs no padding is returned as is, so the padding arithmetic only enters the
    sizes when it pads: under ``torch.export`` / ``torch.compile(dynamic=True)`` the sizes stay
    short symbolic expressions (a ``Mod`` carried into every later size made tracing MLLA take
    minutes), and the amount is a ceiling division (Inductor's and AOTAutograd's value analyses
    have no Python ``%`` on sizes).
    """
    h, w = x.shape[-2:]
    if h % multiple == 0 and w % multiple == 0:
        return x
    return F.pad(x, (0, (w + multiple - 1) // multiple * multiple - w,
                     0, (h + multiple - 1) // multiple * multiple - h))


class ChannelsLastConv2d(nn.Conv2d):
    """``nn.Conv2d`` (same parameters, keys and init) that runs on channels-last memory: the
    input and the weight are given NHWC strides before the convolution (the output comes out
    channels-last; shapes stay NCHW).

    oneDNN picks NHWC only when the weight's strides say so: a 1x1 kernel's NCHW strides also
    pass ``is_contiguous(memory_format=torch.channels_last)``, so ``.to(memory_format=...)`` is
    used rather than ``.contiguous(...)``. On tokens (already NHWC in memory) this removed the
    reorders oneDNN ran around every convolution: MLLA's patch merging 2-3x faster forward and
    backward on a CPU (docs/speed.md).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x.to(memory_format=torch.channels_last),
                                  self.weight.to(memory_format=torch.channels_last), self.bias)


class DropPath(nn.Module):
    """Stochastic depth as a module (identity at eval or when ``drop_prob == 0``)."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = float(drop_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.drop_prob, self.training)

    def extra_repr(self) -> str:
        return f'drop_prob={self.drop_prob}'


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channel dim of an NCHW map (parameters named as nn.LayerNorm)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


def init_truncated_normal_(module: nn.Module, weight_types=(nn.Linear,)) -> None:
    """The Swin/ConvNeXt family's init, in place: weights of ``weight_types`` from a normal
    of std 0.02 truncated at +-2, zero biases, unit LayerNorms.

    The cut at +-2 is 100 std away and never reached, so ``normal_`` + ``clamp_`` draws the
    same law as ``trunc_normal_``, far faster on CPU (no erfinv).
    """
    for m in module.modules():
        if isinstance(m, weight_types):
            with torch.no_grad():
                m.weight.normal_(std=0.02).clamp_(-2.0, 2.0)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def recompute_in_backward(fn, *args):
    """``fn(*args)``, keeping only its inputs for backward and recomputing it there.

    For cheap elementwise/depthwise steps (a depthwise conv + activation) whose outputs would
    otherwise be kept by autograd: costs one recomputation, saves their activations. Plain call
    when no gradient is being recorded. ``fn`` must be deterministic (no dropout).
    """
    if not torch.is_grad_enabled() or not any(
            isinstance(a, torch.Tensor) and a.requires_grad for a in args):
        return fn(*args)
    return checkpoint(fn, *args, use_reentrant=False, preserve_rng_state=False)


def stochastic_depth_rates(drop_path_rate: float, depths) -> list:
    """linspace(0, rate, sum(depths)) split per stage, as Swin/MLLA/VMamba do."""
    total = sum(depths)
    rates = torch.linspace(0, drop_path_rate, total, device='cpu').tolist() if total else []
    out, start = [], 0
    for d in depths:
        out.append(rates[start:start + d])
        start += d
    return out


class CheckpointedBlock(BaseModule):
    """A block that can recompute itself in backward instead of keeping its activations.

    Subclasses set ``self.with_cp`` and implement ``_forward(x)``; ``forward`` runs it under
    ``torch.utils.checkpoint`` while training with a gradient (the random state is restored
    for the recomputation, so DropPath draws the same masks), else plainly.
    """

    with_cp: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.with_cp and self.training and x.requires_grad:
            return checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

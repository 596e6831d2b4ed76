"""Linear layers on oneDNN's matmul on a CPU: :func:`linear` is ``F.linear``, :class:`Linear`
is ``nn.Linear`` (same parameters, keys and init), both computing their forward and input
gradient with oneDNN where that applies.

Why: PyTorch's CPU ``aten::addmm``/``mm`` call MKL's sgemm, and MKL on an AMD CPU runs its
AVX2 code even where the CPU has AVX-512. oneDNN (shipped inside PyTorch, the library behind
its CPU convolutions) picks the code for the CPU it finds. Measured on the 2-core AMD EPYC
(AVX-512), float32, 2 threads: (65536 x 96) @ (96 x 384) 24.0 ms with MKL, 10.0 ms with
oneDNN; (16384 x 192) @ (192 x 768) 21.9 / 10.0 ms; the input gradient ``dy @ W`` 22.7 /
10.6 ms. MKL's ``addmm`` also first copies the broadcast bias into the output (17 ms of a
38 ms fc1 at 1024² stage 0); oneDNN adds it in the GEMM's epilogue. The weight gradient
``dy^T x`` (a reduction over the pixels) stays with MKL: oneDNN's entry point wants both
operands transposed and contiguous, and the copies cost what the GEMM gains.

Where it applies: CPU float32 tensors whose rows (features last) lie contiguously -- a
transposed view is left to MKL, which reads it in place where oneDNN would copy it (VMamba's
MLP gets such gradients: 60-80 MB more peak memory per step at 512² before this rule) -- no
autocast, oneDNN enabled (``torch.backends.mkldnn``), outside tracing, scripting,
``torch.compile``/``torch.export`` and any dispatch mode (FLOP counters, fake tensors) -- everywhere else it is ``F.linear``
itself, so exported graphs, GPU runs and mixed precision see PyTorch's own op. Values differ
from ``F.linear`` only by the order of the float32 sums (~1e-7 relative). The environment
variable ``MLLA_ONEDNN_LINEAR=0`` (read at import) turns it off, e.g. to compare.
"""
import contextlib
import os
from typing import Iterator, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import _get_current_dispatch_mode

__all__ = ['Linear', 'linear', 'linear_grads', 'linear_input_grad', 'onednn_linear',
           'onednn_linear_enabled', 'convert_linear_layers', 'ENV']

#: Environment variable that turns the oneDNN path off when set to ``0``.
ENV = 'MLLA_ONEDNN_LINEAR'
_ENABLED = os.environ.get(ENV, '1').strip().lower() not in ('0', 'false', 'off', 'no')
_TENSOR_TYPES = (torch.Tensor, nn.Parameter)


def onednn_linear_enabled() -> bool:
    """Whether :func:`linear` may use oneDNN in this process (``MLLA_ONEDNN_LINEAR`` and
    ``torch.backends.mkldnn``)."""
    return (_ENABLED and torch.backends.mkldnn.is_available()
            and torch.backends.mkldnn.enabled)


@contextlib.contextmanager
def onednn_linear(enabled: bool) -> Iterator[None]:
    """Within the block, :func:`linear` uses oneDNN where it applies (``True``) or is always
    ``F.linear`` (``False``), e.g. to compare eager values with a compiled graph's, which runs
    ``F.linear``. Process-wide (not per thread)."""
    global _ENABLED
    before, _ENABLED = _ENABLED, bool(enabled)
    try:
        yield
    finally:
        _ENABLED = before


def _onednn_applies(x: torch.Tensor, weight: torch.Tensor,
                    bias: Optional[torch.Tensor]) -> bool:
    if torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.jit.is_scripting():
        return False    # graphs (export, ONNX, Inductor) get PyTorch's own op
    if not onednn_linear_enabled():
        return False
    if type(x) not in _TENSOR_TYPES or type(weight) not in _TENSOR_TYPES:
        return False    # tensor subclasses (fake, functional, ...) keep their own semantics
    if x.device.type != 'cpu' or x.dtype != torch.float32 or weight.dtype != torch.float32:
        return False
    if bias is not None and (type(bias) not in _TENSOR_TYPES or bias.dtype != torch.float32):
        return False
    if x.numel() == 0 or weight.dim() != 2 or x.shape[-1] != weight.shape[1]:
        return False    # F.linear gives the empty result or the shape error
    if not x.is_contiguous():
        return False    # oneDNN would copy it; MKL reads a transposed view in place
    return not torch.is_autocast_enabled('cpu') and _get_current_dispatch_mode() is None


def _matmul(x: torch.Tensor, weight: torch.Tensor,
            bias: Optional[torch.Tensor]) -> torch.Tensor:
    """``x @ weight.T + bias`` with oneDNN over x's last dim (no autograd; x contiguous)."""
    out = torch.ops.mkldnn._linear_pointwise(x.view(-1, x.shape[-1]), weight.contiguous(),
                                             bias, 'none', [], '')
    return out.view(*x.shape[:-1], weight.shape[0])


def linear_input_grad(dy: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``dy @ weight`` (the input gradient of a linear layer), with oneDNN where it applies
    (not when the gradient itself is differentiated: ``create_graph=True``)."""
    weight_t = weight.t()    # (in, out): the weight of the map dy -> dy @ weight
    double_backward = torch.is_grad_enabled() and (dy.requires_grad or weight.requires_grad)
    if not double_backward and _onednn_applies(dy, weight_t, None):
        return _matmul(dy, weight_t, None)
    return dy @ weight


def linear_grads(dy: torch.Tensor, inp: torch.Tensor, weight: torch.Tensor,
                 bias_dtype: Optional[torch.dtype], needs) -> tuple:
    """(d input, d weight, d bias) of ``F.linear(inp, weight, bias)`` for the output gradient
    ``dy``, each only where ``needs`` (three bools) asks, in the forward's matmul dtype (``dy``'s:
    autocast's, or the input's); d weight in the weight's dtype, d bias in ``bias_dtype``."""
    compute = dy.dtype
    dy2 = dy.reshape(-1, dy.shape[-1])
    dinp = dweight = dbias = None
    if needs[0]:
        dinp = linear_input_grad(dy2, weight.to(compute)).view(*inp.shape[:-1], weight.shape[1])
    if needs[1]:
        dweight = (dy2.t() @ inp.reshape(-1, inp.shape[-1]).to(compute)).to(weight.dtype)
    if needs[2] and bias_dtype is not None:
        dbias = dy2.sum(0).to(bias_dtype)
    return dinp, dweight, dbias


class _OneDnnLinear(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.bias_dtype = None if bias is None else bias.dtype
        return _matmul(x, weight, bias)

    @staticmethod
    def backward(ctx, dy):
        x, weight = ctx.saved_tensors
        return linear_grads(dy, x, weight, ctx.bias_dtype, ctx.needs_input_grad)


def linear(x: torch.Tensor, weight: torch.Tensor,
           bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)``, on oneDNN where that applies (see the module)."""
    if not _onednn_applies(x, weight, bias):
        return F.linear(x, weight, bias)
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad or
                                    (bias is not None and bias.requires_grad)):
        return _OneDnnLinear.apply(x, weight, bias)
    return _matmul(x, weight, bias)


class Linear(nn.Linear):
    """``nn.Linear`` whose forward is :func:`linear` (oneDNN on a CPU in float32): same
    arguments, parameters, state-dict keys and initialisation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)


def convert_linear_layers(module: nn.Module) -> int:
    """Make every plain ``nn.Linear`` inside ``module`` a :class:`Linear`, in place (its class
    swapped: parameters, hooks and keys untouched); subclasses of ``nn.Linear`` with their own
    forward are left alone. Returns how many were converted.

    For layers this package does not build -- another codebase's backbone or heads, e.g. to
    compare a peer (Swin-T, ViT-Ti) on the same GEMM (``benchmark_backbones.py --side-by-side
    --onednn-linear-all``)."""
    count = 0
    for layer in module.modules():
        if type(layer) is nn.Linear:
            layer.__class__ = Linear
            count += 1
    return count

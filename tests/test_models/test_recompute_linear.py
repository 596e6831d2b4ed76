"""mlla_mm.models.layers.recompute against the plain ops: gelu_linear (the MLP's fc2(GELU(h)),
GELU recomputed in the backward) and norm_linear (LN(x) then linear layers, LN recomputed):
same forward bit for bit, same gradients, less kept for the backward. The plain linear layer is
the package's (:mod:`mlla_mm.models.layers.linear`: F.linear, on oneDNN in CPU float32)."""
import pytest
import torch
import torch.nn.functional as F

from mlla_mm.models.layers.linear import Linear, linear
from mlla_mm.models.layers.recompute import gelu_linear, norm_linear


def _reference(h, weight, bias):
    return linear(F.gelu(h), weight, bias)


def _inputs(dtype=torch.float32, shape=(2, 13, 24), out=8, bias=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(*shape, generator=g, dtype=dtype) * 2
    weight = torch.randn(out, shape[-1], generator=g, dtype=dtype) / shape[-1] ** 0.5
    b = torch.randn(out, generator=g, dtype=dtype) if bias else None
    return h, weight, b


def _grads(fn, h, weight, bias, dy):
    leaves = [t.detach().clone().requires_grad_() for t in (h, weight, bias) if t is not None]
    out = fn(*leaves) if bias is not None else fn(*leaves, None)
    out.backward(dy)
    return out.detach(), [t.grad for t in leaves]


@pytest.mark.parametrize('bias', [True, False])
@pytest.mark.parametrize('shape', [(2, 13, 24), (1, 5, 7, 24), (24, )])
def test_forward_and_gradients_match_pytorch(bias, shape):
    h, weight, b = _inputs(shape=shape, bias=bias)
    dy = torch.randn(*shape[:-1], 8)
    ours, our_grads = _grads(gelu_linear, h, weight, b, dy)
    ref, ref_grads = _grads(_reference, h, weight, b, dy)
    assert torch.equal(ours, ref)
    for mine, theirs in zip(our_grads, ref_grads):
        torch.testing.assert_close(mine, theirs, rtol=1e-6, atol=1e-6)


def test_gradcheck_float64():
    h, weight, b = (t.requires_grad_() for t in _inputs(torch.float64, shape=(3, 6), out=4))
    assert torch.autograd.gradcheck(gelu_linear, (h, weight, b))


def test_bfloat16_autocast_matches_pytorch():
    """Under CPU autocast the matmuls run in bfloat16 and the weight gradient comes back in
    the parameter's float32, as autograd does it."""
    h, weight, b = _inputs()
    dy = torch.randn(2, 13, 8).bfloat16()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        ours, our_grads = _grads(gelu_linear, h, weight, b, dy)
        ref, ref_grads = _grads(_reference, h, weight, b, dy)
    assert ours.dtype == ref.dtype == torch.bfloat16 and torch.equal(ours, ref)
    for mine, theirs in zip(our_grads, ref_grads):
        assert mine.dtype == theirs.dtype == torch.float32
        torch.testing.assert_close(mine, theirs, rtol=1e-2, atol=1e-2)


def test_keeps_only_its_input_for_backward():
    h, weight, b = _inputs(shape=(4, 64, 32))
    kept = {}

    def saved_bytes(fn):
        kept.clear()

        def pack(t):
            kept[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        leaves = [t.detach().clone().requires_grad_() for t in (h, weight, b)]
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn(*leaves)
        return sum(kept.values())

    ours, ref = saved_bytes(gelu_linear), saved_bytes(_reference)
    assert ours == h.numel() * 4 + weight.numel() * 4
    assert ref >= ours + h.numel() * 4   # PyTorch also keeps GELU(h)


def test_without_autograd_it_is_the_plain_ops():
    h, weight, b = _inputs()
    with torch.no_grad():
        assert torch.equal(gelu_linear(h, weight, b), _reference(h, weight, b))


# ----- norm_linear: LN(x) then linear layers, keeping x ----------------------------------

def _norm_and_linears(channels=24, outs=(16, 8), bias=True, affine=True, dtype=torch.float32):
    torch.manual_seed(0)
    norm = torch.nn.LayerNorm(channels, elementwise_affine=affine).to(dtype)
    if affine:   # not the identity init, so the norm's own gradients mean something
        with torch.no_grad():
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
    linears = [Linear(channels, out, bias=bias).to(dtype) for out in outs]
    return norm, linears


def _run_norm_linear(fn, x, norm, linears, douts):
    x = x.detach().clone().requires_grad_()
    for module in (norm, *linears):
        module.zero_grad(set_to_none=True)
    outs = fn(x, norm, *linears)
    torch.autograd.backward(outs, douts)
    params = [p.grad.clone() for m in (norm, *linears) for p in m.parameters()]
    return [o.detach() for o in outs], [x.grad, *params]


def _norm_linear_reference(x, norm, *linears):
    u = norm(x)
    return tuple(layer(u) for layer in linears)


@pytest.mark.parametrize('bias', [True, False])
@pytest.mark.parametrize('affine', [True, False])
@pytest.mark.parametrize('outs', [(16, ), (16, 8)])
def test_norm_linear_matches_pytorch(bias, affine, outs):
    norm, linears = _norm_and_linears(outs=outs, bias=bias, affine=affine)
    x = torch.randn(2, 13, 24) * 3 + 1
    douts = [torch.randn(2, 13, out) for out in outs]
    ours, our_grads = _run_norm_linear(norm_linear, x, norm, linears, douts)
    ref, ref_grads = _run_norm_linear(_norm_linear_reference, x, norm, linears, douts)
    for mine, theirs in zip(ours, ref):
        assert torch.equal(mine, theirs)
    for mine, theirs in zip(our_grads, ref_grads):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6)


def test_norm_linear_one_output_unused():
    """A linear whose output gets no gradient (None) contributes nothing."""
    norm, linears = _norm_and_linears()
    x = torch.randn(3, 24, requires_grad=True)
    a, _ = norm_linear(x, norm, *linears)
    a.sum().backward()
    ref_x = x.detach().clone().requires_grad_()
    torch.testing.assert_close(x.grad, torch.autograd.grad(
        linears[0](norm(ref_x)).sum(), ref_x)[0], rtol=1e-5, atol=1e-6)
    assert linears[1].weight.grad is None or not linears[1].weight.grad.any()


def test_norm_linear_gradcheck_float64():
    norm, linears = _norm_and_linears(channels=6, outs=(4, 3), dtype=torch.float64)
    x = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    # the parameters' gradients: test_norm_linear_matches_pytorch
    assert torch.autograd.gradcheck(lambda x: norm_linear(x, norm, *linears), (x, ))


def test_norm_linear_bfloat16_autocast_matches_pytorch():
    norm, linears = _norm_and_linears()
    x = torch.randn(2, 13, 24)
    douts = [torch.randn(2, 13, 16).bfloat16(), torch.randn(2, 13, 8).bfloat16()]
    with torch.autocast('cpu', dtype=torch.bfloat16):
        ours, our_grads = _run_norm_linear(norm_linear, x, norm, linears, douts)
        ref, ref_grads = _run_norm_linear(_norm_linear_reference, x, norm, linears, douts)
    for mine, theirs in zip(ours, ref):
        assert mine.dtype == theirs.dtype and torch.equal(mine, theirs)
    for mine, theirs in zip(our_grads, ref_grads):
        assert mine.dtype == theirs.dtype
        torch.testing.assert_close(mine, theirs, rtol=2e-2, atol=2e-2)


def test_norm_linear_keeps_only_its_input():
    norm, linears = _norm_and_linears(channels=32, outs=(32, 32))
    x = torch.randn(4, 64, 32, requires_grad=True)
    kept = {}

    def pack(t):
        kept[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    def activations(fn):
        kept.clear()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn(x, norm, *linears)
        params = {p.untyped_storage().data_ptr() for m in (norm, *linears)
                  for p in m.parameters()}
        return sum(n for ptr, n in kept.items() if ptr not in params)

    assert activations(norm_linear) == x.numel() * 4
    assert activations(_norm_linear_reference) >= 2 * x.numel() * 4   # x and LN(x)


def test_norm_linear_without_autograd_is_the_plain_modules():
    norm, linears = _norm_and_linears()
    x = torch.randn(2, 5, 24)
    with torch.no_grad():
        for mine, theirs in zip(norm_linear(x, norm, *linears),
                                _norm_linear_reference(x, norm, *linears)):
            assert torch.equal(mine, theirs)

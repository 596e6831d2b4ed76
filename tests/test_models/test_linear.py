"""oneDNN linear layers (mlla_mm/models/layers/linear.py): F.linear's values and gradients, the
oneDNN path taken where it applies and PyTorch's own op everywhere else."""
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from mlla_mm.models.layers import linear as linear_module
from mlla_mm.models.layers.linear import Linear, convert_linear_layers, linear, linear_input_grad

pytestmark = pytest.mark.skipif(not linear_module.onednn_linear_enabled(),
                                reason='oneDNN is not available or turned off')


@pytest.fixture
def onednn_calls(monkeypatch):
    """Counts the oneDNN matmuls run."""
    calls = []
    original = linear_module._matmul

    def counting(*args):
        calls.append(args[0].shape)
        return original(*args)

    monkeypatch.setattr(linear_module, '_matmul', counting)
    return calls


def _reference(x, weight, bias, dy):
    """F.linear's output and gradients in float64."""
    leaves = [t.detach().double().requires_grad_() for t in (x, weight, bias) if t is not None]
    out = F.linear(*leaves) if bias is not None else F.linear(*leaves, None)
    out.backward(dy.double())
    return out, [t.grad for t in leaves]


@pytest.mark.parametrize('shape', [(7, 5), (2, 9, 5), (2, 3, 4, 5), (1, 1, 5)])
@pytest.mark.parametrize('with_bias', [True, False])
def test_values_and_gradients_match_f_linear(shape, with_bias, onednn_calls):
    torch.manual_seed(0)
    x = torch.randn(shape, requires_grad=True)
    weight = torch.randn(6, 5, requires_grad=True)
    bias = torch.randn(6, requires_grad=True) if with_bias else None
    out = linear(x, weight, bias)
    dy = torch.randn(out.shape)
    out.backward(dy)
    ref, ref_grads = _reference(x, weight, bias, dy)
    torch.testing.assert_close(out, ref.float(), rtol=1e-5, atol=1e-5)
    grads = [t.grad for t in (x, weight, bias) if t is not None]
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want.float(), rtol=1e-5, atol=1e-5)
    assert len(onednn_calls) == 2     # the forward and the input gradient


def test_partial_grads(onednn_calls):
    torch.manual_seed(1)
    x = torch.randn(2, 4, 3, 5)
    weight = torch.randn(8, 5, requires_grad=True)
    bias = torch.randn(8)
    out = linear(x, weight, bias)
    dy = torch.randn(out.shape)
    out.backward(dy)
    ref, (_, dweight, _) = _reference(x, weight, bias, dy)
    torch.testing.assert_close(out, ref.float(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(weight.grad, dweight.float(), rtol=1e-5, atol=1e-5)
    assert len(onednn_calls) == 1     # x needs no gradient: only the forward


def test_transposed_views_stay_with_pytorch(onednn_calls):
    """Rows not contiguous (a permuted NCHW map, the gradient VMamba's MLP receives): oneDNN
    would copy them, so PyTorch's op reads them in place; values as F.linear's."""
    torch.manual_seed(5)
    x = torch.randn(2, 5, 4, 3).permute(0, 2, 3, 1).requires_grad_()    # (2, 4, 3, 5)
    weight = torch.randn(8, 5, requires_grad=True)
    out = linear(x, weight)
    assert onednn_calls == []
    dy = torch.randn(2, 8, 4, 3).permute(0, 2, 3, 1)                    # transposed gradient
    torch.testing.assert_close(linear_input_grad(dy, weight), dy @ weight)
    assert onednn_calls == []
    torch.testing.assert_close(out, F.linear(x, weight))


def test_inference_path_and_input_grad_helper(onednn_calls):
    x, weight, bias = torch.randn(10, 4), torch.randn(3, 4), torch.randn(3)
    with torch.no_grad():
        torch.testing.assert_close(linear(x, weight, bias), F.linear(x, weight, bias))
    dy = torch.randn(10, 3)
    torch.testing.assert_close(linear_input_grad(dy, weight), dy @ weight)
    assert len(onednn_calls) == 2


def test_double_backward_differentiates_the_gradient():
    """create_graph=True (a gradient penalty): the input gradient is then computed with
    differentiable PyTorch ops, and its own gradient is F.linear's."""
    torch.manual_seed(6)
    x = torch.randn(6, 4, requires_grad=True)
    weight = torch.randn(3, 4, requires_grad=True)
    grads = []
    for fn in (linear, F.linear):
        (dx, ) = torch.autograd.grad(fn(x, weight).pow(2).sum(), x, create_graph=True)
        grads.append(torch.autograd.grad(dx.pow(2).sum(), weight)[0])
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-5)


def test_same_values_on_one_and_two_threads():
    torch.manual_seed(2)
    x, weight, bias = torch.randn(300, 64), torch.randn(96, 64), torch.randn(96)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = linear(x, weight, bias)
        torch.set_num_threads(2)
        two = linear(x, weight, bias)
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(one, two, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('case', ['float64', 'bfloat16', 'autocast', 'trace', 'flop_counter',
                                  'empty'])
def test_pytorch_op_where_onednn_does_not_apply(case, onednn_calls):
    x, weight, bias = torch.randn(4, 6), torch.randn(5, 6), torch.randn(5)
    if case == 'float64':
        x, weight, bias = x.double(), weight.double(), bias.double()
        torch.autograd.gradcheck(linear, (x.requires_grad_(), weight.requires_grad_(), bias))
    elif case == 'bfloat16':
        out = linear(x.bfloat16(), weight.bfloat16(), bias.bfloat16())
        assert out.dtype == torch.bfloat16
    elif case == 'autocast':
        with torch.autocast('cpu', dtype=torch.bfloat16):
            assert linear(x, weight, bias).dtype == torch.bfloat16   # autocast's own cast
    elif case == 'trace':
        layer = Linear(6, 5)
        traced = torch.jit.trace(layer, x, check_trace=False)
        assert 'linear' in str(traced.graph) and 'mkldnn' not in str(traced.graph)
    elif case == 'flop_counter':
        with FlopCounterMode(display=False) as counter:
            linear(x, weight, bias)
        assert counter.get_total_flops() == 2 * 4 * 6 * 5
    elif case == 'empty':
        assert linear(torch.randn(0, 6), weight, bias).shape == (0, 5)
    assert onednn_calls == []


def test_linear_module_is_nn_linear_with_its_keys():
    torch.manual_seed(3)
    plain = nn.Linear(6, 4)
    ours = Linear(6, 4)
    assert isinstance(ours, nn.Linear)
    assert ours.state_dict().keys() == plain.state_dict().keys()
    ours.load_state_dict(plain.state_dict())
    x = torch.randn(3, 6)
    torch.testing.assert_close(ours(x), plain(x), rtol=1e-5, atol=1e-6)


def test_convert_linear_layers_swaps_plain_linears_only():
    torch.manual_seed(4)
    attention = nn.MultiheadAttention(8, 2)      # its out_proj: a subclass, used by F.mha
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), attention, Linear(8, 3))
    x = torch.randn(5, 8)
    before = model[0](x)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert convert_linear_layers(model) == 1
    assert type(model[0]) is Linear and type(attention.out_proj) is not Linear
    assert model.state_dict().keys() == state.keys()
    torch.testing.assert_close(model[0](x), before, rtol=1e-5, atol=1e-6)


def test_environment_variable_turns_it_off():
    code = ('import torch; from mlla_mm.models.layers import linear as m; '
            'print(m.onednn_linear_enabled())')
    env = dict(os.environ, **{linear_module.ENV: '0'})
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True,
                         check=True, cwd=os.path.join(os.path.dirname(__file__), '..', '..'))
    assert out.stdout.strip().splitlines()[-1] == 'False'

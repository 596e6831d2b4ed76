"""Depthwise 2-D convolution on channels-last maps (activation, residual, several kernels with
their own padding): backends vs the naive reference, forward and every gradient, errors."""
import pytest
import torch
import torch.nn.functional as F

from mlla_kernels import depthwise_conv2d
from mlla_kernels.depthwise_conv.naive import depthwise_conv2d_naive

from kernel_checks import PRECISIONS, check_against_naive, needs_numba

NAMES = ('x', 'weight', 'bias')
BACKENDS = ['torch', pytest.param('numba', marks=needs_numba)]


def make_inputs(batch, height, width, channels, kernel, n_kernels=None, bias=True):
    lead = () if n_kernels is None else (n_kernels,)
    return [torch.randn(batch, height, width, channels, dtype=torch.float64),
            torch.randn(*lead, channels, *kernel, dtype=torch.float64) * 0.3,
            torch.randn(*lead, channels, dtype=torch.float64) * 0.1 if bias else None]


def call(fn, **fixed):
    def run(x, weight, bias):
        return fn(x, weight, bias, **fixed)
    return run


CASES = [
    # batch, height, width, channels, kernel, n_kernels, bias, options
    (2, 5, 7, 6, (3, 3), None, True, dict()),                       # LePE / CPE conv
    (2, 5, 7, 6, (3, 3), None, True, dict(residual=True)),          # CPE: x + conv(x)
    (1, 4, 6, 5, (3, 3), None, True, dict(activation='silu')),      # MLLA's dwc + SiLU
    (1, 1, 1, 3, (3, 3), None, False, dict(activation='silu')),     # one pixel, no bias
    (1, 3, 2, 4, (5, 3), None, True, dict(padding=(1, 2))),         # off-centre padding
    (2, 1, 9, 4, (1, 4), 2, True, dict(padding=((0, 3), (0, 0)), activation='silu')),
    # ^ Vim's causal and anti-causal token convs: two kernels over one 1 x L map
]


@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('case', CASES)
def test_backend_matches_naive(backend, case):
    *shape, kernel, n_kernels, bias, options = case
    torch.manual_seed(0)
    tensors = make_inputs(*shape, kernel, n_kernels, bias)
    for dtype, tol in PRECISIONS[backend]:
        check_against_naive(call(depthwise_conv2d, backend=backend, **options),
                            call(depthwise_conv2d_naive, **options), tensors, NAMES, {}, dtype,
                            tol)


@pytest.mark.parametrize('backend', BACKENDS)
def test_bfloat16_within_its_rounding(backend):
    torch.manual_seed(1)
    tensors = make_inputs(2, 4, 5, 8, (3, 3))
    check_against_naive(call(depthwise_conv2d, backend=backend, activation='silu'),
                        call(depthwise_conv2d_naive, activation='silu'), tensors, NAMES, {},
                        torch.bfloat16, 5e-2)


def test_naive_is_a_grouped_conv2d():
    x, weight, bias = make_inputs(2, 5, 6, 4, (3, 3))
    expected = F.conv2d(x.permute(0, 3, 1, 2), weight[:, None], bias, padding=1, groups=4)
    torch.testing.assert_close(depthwise_conv2d_naive(x, weight, bias),
                               expected.permute(0, 2, 3, 1))


@needs_numba
def test_numba_gradcheck_float64():
    torch.manual_seed(2)
    tensors = [t.requires_grad_() for t in make_inputs(1, 3, 4, 3, (3, 3))]
    assert torch.autograd.gradcheck(
        call(depthwise_conv2d, backend='numba', activation='silu', residual=True), tensors)


@needs_numba
def test_numba_same_bits_for_one_and_two_threads():
    torch.manual_seed(3)
    tensors = make_inputs(2, 9, 11, 8, (3, 3))
    results = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            xs = [t.float().requires_grad_() for t in tensors]
            out = depthwise_conv2d(*xs, activation='silu', backend='numba')
            out.backward(torch.ones_like(out))
            results.append([out.detach()] + [x.grad for x in xs])
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(*results):
        assert torch.equal(a, b)


@needs_numba
def test_numba_reads_a_strided_view():
    """Tokens (B, n, C) of a non-contiguous tensor as a map: copied once, same result."""
    x, weight, bias = make_inputs(1, 4, 5, 6, (3, 3))
    wide = torch.cat([x, x], dim=-1)[..., :6]
    torch.testing.assert_close(depthwise_conv2d(wide, weight, bias, backend='numba'),
                               depthwise_conv2d_naive(x, weight, bias))


@pytest.mark.parametrize('options, message', [
    (dict(padding=(3, 0)), 'must lie within the 3x3 kernel'),
    (dict(padding=((0, 0), (1, 1))), 'padding gives 2 .top, left. pairs for 1 kernels'),
    (dict(activation='gelu'), 'activation must be one of'),
])
def test_option_errors(options, message):
    x, weight, bias = make_inputs(1, 3, 3, 2, (3, 3))
    with pytest.raises(ValueError, match=message):
        depthwise_conv2d(x, weight, bias, **options)


def test_residual_needs_one_kernel():
    x, weight, bias = make_inputs(1, 3, 3, 2, (3, 3), n_kernels=2)
    with pytest.raises(ValueError, match='residual=True adds the input to the output of one'):
        depthwise_conv2d(x, weight, bias, residual=True)


def test_shape_errors_name_the_argument():
    x, weight, bias = make_inputs(1, 3, 3, 2, (3, 3))
    with pytest.raises(ValueError, match='weight'):
        depthwise_conv2d(x, weight[:1], bias)
    with pytest.raises(ValueError, match='bias'):
        depthwise_conv2d(x, weight, bias[:1])

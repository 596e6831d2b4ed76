"""MLLA's fused linear attention (RoPE, normaliser, LePE, gate): backends vs the naive reference,
forward and every gradient, edge shapes, dtypes, thread counts, errors."""
import pytest
import torch

from mlla_kernels import linear_attention
from mlla_kernels.dispatch import numba_status
from mlla_kernels.linear_attention.naive import linear_attention_naive, rotate_pairs

from kernel_checks import PRECISIONS, assert_close_rel, check_against_naive, needs_numba

NAMES = ('qk', 'v', 'lepe_weight', 'lepe_bias', 'gate')
BACKENDS = ['torch', pytest.param('numba', marks=needs_numba)]


def rope_tables(height, width, channels):
    """Random angles (any table is valid input; MLLA's come from rope_2d_tables)."""
    angles = torch.rand(height * width, channels // 2, dtype=torch.float64) * 6.0
    return angles.cos(), angles.sin()


def make_inputs(batch, height, width, channels, options, kernel=(3, 3)):
    return [torch.randn(batch, height, width, 2 * channels, dtype=torch.float64),
            torch.randn(batch, height, width, channels, dtype=torch.float64),
            torch.randn(channels, *kernel, dtype=torch.float64) * 0.3
            if 'lepe' in options else None,
            torch.randn(channels, dtype=torch.float64) * 0.1 if 'bias' in options else None,
            torch.randn(batch, height, width, channels, dtype=torch.float64)
            if 'gate' in options else None]


def call(fn, tables, heads, **fixed):
    cos, sin = tables

    def run(qk, v, lepe_weight, lepe_bias, gate):
        return fn(qk, v, cos.to(v.dtype), sin.to(v.dtype), heads, lepe_weight=lepe_weight,
                  lepe_bias=lepe_bias, gate=gate, **fixed)
    return run


CASES = [
    # batch, height, width, channels, heads, options
    (2, 5, 7, 16, 2, ('lepe', 'bias', 'gate')),      # odd map, MLLA's block
    (1, 1, 3, 4, 1, ('lepe', 'bias', 'gate')),       # one row of three tokens
    (1, 3, 20, 8, 4, ('lepe', 'bias', 'gate')),      # d = 2, more rows than tiles
    (2, 6, 4, 12, 3, ('lepe',)),                     # no bias, no gate
    (1, 4, 5, 8, 2, ()),                             # attention only
    (1, 2, 9, 8, 1, ('gate',)),                      # gate only, one head
]


@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('case', CASES)
def test_backend_matches_naive(backend, case):
    batch, height, width, channels, heads, options = case
    torch.manual_seed(0)
    tensors = make_inputs(batch, height, width, channels, options)
    tables = rope_tables(height, width, channels)
    for dtype, tol in PRECISIONS[backend]:
        check_against_naive(call(linear_attention, tables, heads, backend=backend),
                            call(linear_attention_naive, tables, heads), tensors, NAMES, {},
                            dtype, tol)


@pytest.mark.parametrize('backend', BACKENDS)
def test_a_5x3_lepe_kernel(backend):
    torch.manual_seed(1)
    tensors = make_inputs(1, 6, 5, 8, ('lepe', 'bias', 'gate'), kernel=(5, 3))
    tables = rope_tables(6, 5, 8)
    check_against_naive(call(linear_attention, tables, 2, backend=backend),
                        call(linear_attention_naive, tables, 2), tensors, NAMES, {},
                        torch.float64, 1e-10)


@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_half_precision_within_its_rounding(backend, dtype):
    torch.manual_seed(2)
    tensors = make_inputs(2, 4, 6, 16, ('lepe', 'bias', 'gate'))
    tables = rope_tables(4, 6, 16)
    check_against_naive(call(linear_attention, tables, 2, backend=backend),
                        call(linear_attention_naive, tables, 2), tensors, NAMES, {}, dtype,
                        5e-2)


@needs_numba
def test_numba_gradcheck_float64():
    torch.manual_seed(3)
    tensors = [t.requires_grad_() for t in make_inputs(1, 3, 4, 8, ('lepe', 'bias', 'gate'))]
    tables = rope_tables(3, 4, 8)
    assert torch.autograd.gradcheck(call(linear_attention, tables, 2, backend='numba'),
                                     tensors)


@needs_numba
def test_numba_same_bits_for_one_and_two_threads():
    torch.manual_seed(4)
    tensors = make_inputs(2, 9, 11, 16, ('lepe', 'bias', 'gate'))
    tables = rope_tables(9, 11, 16)
    fn = call(linear_attention, tables, 4, backend='numba')
    results = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            xs = [t.float().requires_grad_() for t in tensors]
            out = fn(*xs)
            out.backward(torch.ones_like(out))
            results.append([out.detach()] + [x.grad for x in xs])
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_naive_is_mllas_formula_per_head():
    """One head by hand: q~ (sum_j k~_j^T v_j / n) / (q . mean k + eps), + LePE, * SiLU(gate)."""
    torch.manual_seed(5)
    qk, v, lepe_w, lepe_b, gate = make_inputs(1, 3, 4, 4, ('lepe', 'bias', 'gate'))
    cos, sin = rope_tables(3, 4, 4)
    out = linear_attention_naive(qk, v, cos, sin, 1, lepe_weight=lepe_w, lepe_bias=lepe_b,
                                 gate=gate)
    q = torch.nn.functional.elu(qk[..., :4].reshape(12, 4)) + 1
    k = torch.nn.functional.elu(qk[..., 4:].reshape(12, 4)) + 1
    vt = v.reshape(12, 4)
    attn = rotate_pairs(q, cos, sin) @ (rotate_pairs(k, cos, sin).T @ vt / 12)
    attn = attn / (q @ k.mean(0) + 1e-6)[:, None]
    lepe = torch.nn.functional.conv2d(v.permute(0, 3, 1, 2), lepe_w[:, None], lepe_b,
                                      padding=1, groups=4).permute(0, 2, 3, 1).reshape(12, 4)
    expected = (attn + lepe) * torch.nn.functional.silu(gate.reshape(12, 4))
    assert_close_rel(out.reshape(12, 4), expected, 1e-12, 'output')


@pytest.mark.filterwarnings('ignore::torch.jit.TracerWarning')
def test_traced_calls_record_torch_ops():
    """Under torch.jit tracing (FLOP counting, export) the PyTorch formulation runs."""
    qk, v, lepe_w, lepe_b, gate = make_inputs(1, 2, 3, 4, ('lepe', 'bias', 'gate'))
    cos, sin = rope_tables(2, 3, 4)

    def fn(qk, v, gate):
        return linear_attention(qk.float(), v.float(), cos.float(), sin.float(), 1,
                                lepe_weight=lepe_w.float(), gate=gate.float(), backend='numba'
                                if numba_status()[0] else 'auto')
    traced = torch.jit.trace(fn, (qk, v, gate))
    assert 'aten::matmul' in str(traced.graph) or 'aten::bmm' in str(traced.graph)


@pytest.mark.parametrize('heads, kernel, message', [
    (3, (3, 3), 'num_heads must be a positive int dividing'),     # 8 channels / 3
    (8, (3, 3), 'num_heads must be a positive int dividing'),     # heads of width 1
    (2, (2, 3), 'must have odd kh and kw'),
])
def test_errors(heads, kernel, message):
    qk, v, lepe_w, lepe_b, gate = make_inputs(1, 2, 3, 8, ('lepe',), kernel=kernel)
    cos, sin = rope_tables(2, 3, 8)
    with pytest.raises(ValueError, match=message):
        linear_attention(qk, v, cos, sin, heads, lepe_weight=lepe_w)


def test_shape_errors_name_the_argument():
    qk, v, lepe_w, _, gate = make_inputs(1, 2, 3, 8, ('lepe', 'gate'))
    cos, sin = rope_tables(2, 3, 8)
    with pytest.raises(ValueError, match='qk'):
        linear_attention(qk[..., :8], v, cos, sin, 2)
    with pytest.raises(ValueError, match='rope_cos'):
        linear_attention(qk, v, cos[:5], sin, 2)
    with pytest.raises(ValueError, match='gate'):
        linear_attention(qk, v, cos, sin, 2, gate=gate[:, :1])
    with pytest.raises(ValueError, match='lepe_bias is given without lepe_weight'):
        linear_attention(qk, v, cos, sin, 2, lepe_bias=torch.zeros(8, dtype=torch.float64))

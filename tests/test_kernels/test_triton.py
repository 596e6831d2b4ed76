"""Triton scan kernels against the naive references: outputs and every input's gradient.

Without a GPU the kernels run under ``TRITON_INTERPRET=1`` (set by tests/conftest.py) on tiny
shapes; the chunk is shrunk to 8 steps so that sequences cross several chunk borders. The
reference runs in float64. The ``gpu`` tests run real shapes in fp32 and bf16 on CUDA.
"""
import pytest
import torch

pytest.importorskip('triton')

from mlla_kernels import triton_utils  # noqa: E402
from mlla_kernels.bidirectional.naive import bidirectional_selective_scan_naive  # noqa: E402
from mlla_kernels.bidirectional.triton import bidirectional_selective_scan_triton  # noqa: E402
from mlla_kernels.cross_scan.naive import cross_scan_selective_scan_naive  # noqa: E402
from mlla_kernels.cross_scan.triton import cross_scan_selective_scan_triton  # noqa: E402
from mlla_kernels.selective_scan.naive import selective_scan_naive  # noqa: E402
from mlla_kernels.selective_scan.triton import selective_scan_triton  # noqa: E402

from kernel_checks import assert_close_rel  # noqa: E402

DEVICE = 'cuda' if torch.cuda.is_available() else 'cpu'
gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setitem(triton_utils.TUNING, 'chunk', 8)


def _delta(*shape, softplus, device=DEVICE):
    # raw deltas for softplus; small positive step sizes otherwise
    if softplus:
        return torch.randn(*shape, device=device) * 0.5 - 1.0
    return torch.rand(*shape, device=device) * 0.4 + 0.05


def _A(*shape, device=DEVICE):
    return -torch.exp(torch.randn(*shape, device=device) * 0.5)


def _leaves(tensors):
    return [t.detach().clone().requires_grad_(True) if t is not None else None for t in tensors]


def check_against_naive(fn, ref, tensors, kwargs, tol=1e-4, last_state=False):
    """Run fn and ref (in float64) on the same inputs; compare y and every gradient."""
    ours = _leaves(tensors)
    theirs = _leaves([None if t is None else t.double() for t in tensors])
    out = fn(*ours, **kwargs)
    out_ref = ref(*theirs, **kwargs)
    outs = out if last_state else (out,)
    outs_ref = out_ref if last_state else (out_ref,)
    loss = loss_ref = 0
    for o, o_ref in zip(outs, outs_ref):
        assert o.shape == o_ref.shape
        assert_close_rel(o, o_ref, tol, 'output')
        weight = torch.randn_like(o_ref)
        loss = loss + (o * weight.to(o.dtype)).sum()
        loss_ref = loss_ref + (o_ref * weight).sum()
    loss.backward()
    loss_ref.backward()
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if a is None:
            continue
        assert a.grad is not None, f'no gradient for input {i}'
        assert a.grad.shape == a.shape and a.grad.dtype == a.dtype
        assert_close_rel(a.grad, b.grad, tol, f'gradient of input {i}')


def test_no_kernel_relies_on_a_reverse_scan():
    """associative_scan/cumsum(reverse=True) with a non-commutative combine is right under the
    interpreter and wrong on GPUs (triton-lang/triton #4362, #8412): no @triton.jit function of
    the package may pass reverse=True (the adjoint runs forward over reversed steps)."""
    import ast
    import pathlib
    offenders = []
    for path in pathlib.Path(triton_utils.__file__).parent.rglob('*.py'):
        for fn in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(fn, ast.FunctionDef)
                    and any('jit' in ast.unparse(d) for d in fn.decorator_list)):
                continue
            for call in ast.walk(fn):
                if isinstance(call, ast.Call) and any(
                        kw.arg == 'reverse' and not (isinstance(kw.value, ast.Constant)
                                                     and kw.value.value is False)
                        for kw in call.keywords):
                    offenders.append(f'{path.name}:{call.lineno} in {fn.name}')
    assert not offenders, f'reverse scans in Triton kernels: {offenders}'


# ----------------------------------------------------------------------------- selective scan
@pytest.mark.parametrize(
    'batch,dim,length,n_state,groups,options,reverse',
    [
        (1, 2, 1, 1, 1, (), False),                                     # L = 1, N = 1
        (1, 3, 7, 4, None, ('D', 'z', 'bias', 'softplus'), False),      # B, C (batch, N, L)
        (2, 4, 37, 16, 2, ('D', 'z', 'bias', 'softplus'), False),       # grouped, N = 16
        (1, 4, 37, 4, 2, ('D', 'z', 'bias', 'softplus'), True),         # reverse in time
        (2, 3, 20, 4, 1, ('D',), True),
        (1, 8, 16, 2, 2, ('z',), False),                                # L % chunk == 0
    ])
def test_selective_scan(batch, dim, length, n_state, groups, options, reverse):
    softplus = 'softplus' in options
    bc_shape = (batch, n_state, length) if groups is None else (batch, groups, n_state, length)
    tensors = [
        torch.randn(batch, dim, length, device=DEVICE),
        _delta(batch, dim, length, softplus=softplus),
        _A(dim, n_state),
        torch.randn(*bc_shape, device=DEVICE),
        torch.randn(*bc_shape, device=DEVICE),
        torch.randn(dim, device=DEVICE) if 'D' in options else None,
        torch.randn(batch, dim, length, device=DEVICE) if 'z' in options else None,
        torch.randn(dim, device=DEVICE) * 0.5 if 'bias' in options else None,
    ]
    check_against_naive(selective_scan_triton, selective_scan_naive, tensors,
                        dict(delta_softplus=softplus, reverse=reverse))


@pytest.mark.parametrize('reverse', [False, True])
def test_selective_scan_last_state(reverse):
    """last_state equals the reference's and gradients flow back through it."""
    batch, dim, length, n_state = 1, 2, 19, 4
    tensors = [torch.randn(batch, dim, length, device=DEVICE),
               _delta(batch, dim, length, softplus=True), _A(dim, n_state),
               torch.randn(batch, n_state, length, device=DEVICE),
               torch.randn(batch, n_state, length, device=DEVICE),
               torch.randn(dim, device=DEVICE), None, torch.randn(dim, device=DEVICE)]
    check_against_naive(selective_scan_triton, selective_scan_naive, tensors,
                        dict(delta_softplus=True, return_last_state=True, reverse=reverse),
                        last_state=True)


def test_selective_scan_non_contiguous():
    batch, dim, length, n_state = 1, 3, 11, 4
    u = torch.randn(batch, length, dim, device=DEVICE).transpose(1, 2)
    delta = _delta(batch, length, dim, softplus=True).transpose(1, 2)
    A = _A(n_state, dim).t()
    B = torch.randn(batch, 2 * n_state, length, device=DEVICE)[:, ::2]
    C = torch.randn(batch, length, n_state, device=DEVICE).transpose(1, 2)
    z = torch.randn(batch, dim, 2 * length, device=DEVICE)[..., ::2]
    assert not any(t.is_contiguous() for t in (u, delta, A, B, C, z))
    y = selective_scan_triton(u, delta, A, B, C, z=z, delta_softplus=True)
    y_ref = selective_scan_naive(u, delta, A, B, C, z=z, delta_softplus=True)
    assert_close_rel(y, y_ref, 1e-4, 'output')


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_selective_scan_half_precision(dtype):
    """fp16/bf16 tensors in, y and gradients in the same dtype; state kept in fp32."""
    batch, dim, length, n_state = 1, 2, 19, 4
    tensors = [torch.randn(batch, dim, length, device=DEVICE).to(dtype),
               _delta(batch, dim, length, softplus=True).to(dtype), _A(dim, n_state),
               torch.randn(batch, n_state, length, device=DEVICE).to(dtype),
               torch.randn(batch, n_state, length, device=DEVICE).to(dtype),
               torch.randn(dim, device=DEVICE),
               torch.randn(batch, dim, length, device=DEVICE).to(dtype),
               torch.randn(dim, device=DEVICE)]
    check_against_naive(selective_scan_triton, selective_scan_naive, tensors,
                        dict(delta_softplus=True), tol=3e-2)


def test_selective_scan_errors():
    u = torch.randn(1, 2, 5, device=DEVICE)
    A = _A(2, 4)
    B = torch.randn(1, 4, 5, device=DEVICE)
    with pytest.raises(TypeError, match='float64'):
        selective_scan_triton(u.double(), u.double(), A.double(), B.double(), B.double())
    with pytest.raises(ValueError, match='A must be'):
        selective_scan_triton(u, u, _A(3, 4), B, B)
    with pytest.raises(ValueError, match='multiple of the number of groups'):
        selective_scan_triton(u, u, A, torch.randn(1, 3, 4, 5, device=DEVICE),
                              torch.randn(1, 3, 4, 5, device=DEVICE))


# --------------------------------------------------------------------------------- cross-scan
@pytest.mark.parametrize(
    'directions,height,width,with_params',
    [(1, 3, 5, True), (2, 3, 5, True), (4, 3, 5, True), (4, 5, 2, False), (4, 1, 3, True)])
def test_cross_scan(directions, height, width, with_params):
    batch, dim, n_state, k = 1, 4, 4, directions
    tensors = [
        torch.randn(batch, dim, height, width, device=DEVICE),
        _delta(batch, k, dim, height, width, softplus=True),
        _A(k * dim, n_state),
        torch.randn(batch, k, n_state, height, width, device=DEVICE),
        torch.randn(batch, k, n_state, height, width, device=DEVICE),
        torch.randn(k * dim, device=DEVICE) if with_params else None,
        torch.randn(k * dim, device=DEVICE) * 0.5 if with_params else None,
    ]
    check_against_naive(cross_scan_selective_scan_triton, cross_scan_selective_scan_naive,
                        tensors, dict(delta_softplus=True, directions=k))


def test_cross_scan_batch_and_state_one():
    """VMamba v2 runs with d_state = 1; batch 2 exercises the batch reductions."""
    batch, dim, height, width, k, n_state = 2, 2, 3, 4, 4, 1
    tensors = [torch.randn(batch, dim, height, width, device=DEVICE),
               _delta(batch, k, dim, height, width, softplus=True), _A(k * dim, n_state),
               torch.randn(batch, k, n_state, height, width, device=DEVICE),
               torch.randn(batch, k, n_state, height, width, device=DEVICE),
               torch.randn(k * dim, device=DEVICE), torch.randn(k * dim, device=DEVICE)]
    check_against_naive(cross_scan_selective_scan_triton, cross_scan_selective_scan_naive,
                        tensors, dict(delta_softplus=True, directions=k))


def test_cross_scan_errors():
    u = torch.randn(1, 2, 3, 3, device=DEVICE)
    delta = torch.randn(1, 4, 2, 3, 3, device=DEVICE)
    B = torch.randn(1, 4, 4, 3, 3, device=DEVICE)
    with pytest.raises(ValueError, match='directions must be one of'):
        cross_scan_selective_scan_triton(u, delta, _A(8, 4), B, B, directions=3)
    with pytest.raises(ValueError, match='delta must have shape'):
        cross_scan_selective_scan_triton(u, delta[:, :2], _A(8, 4), B, B, directions=4)
    with pytest.raises(ValueError, match='B must have shape'):
        cross_scan_selective_scan_triton(u, delta, _A(8, 4), B[:, :, :2], B, directions=4)


# ----------------------------------------------------------------------------- bidirectional
@pytest.mark.parametrize('length,with_params', [(13, True), (1, False)])
def test_bidirectional(length, with_params):
    batch, dim, n_state = 1, 3, 4
    tensors = [
        torch.randn(batch, 2, dim, length, device=DEVICE),
        _delta(batch, 2, dim, length, softplus=True),
        _A(2, dim, n_state),
        torch.randn(batch, 2, n_state, length, device=DEVICE),
        torch.randn(batch, 2, n_state, length, device=DEVICE),
        torch.randn(2, dim, device=DEVICE) if with_params else None,
        torch.randn(batch, dim, length, device=DEVICE) if with_params else None,
        torch.randn(2, dim, device=DEVICE) * 0.5 if with_params else None,
    ]
    check_against_naive(bidirectional_selective_scan_triton, bidirectional_selective_scan_naive,
                        tensors, dict(delta_softplus=True))


def test_bidirectional_errors():
    u = torch.randn(1, 2, 3, 5, device=DEVICE)
    B = torch.randn(1, 2, 4, 5, device=DEVICE)
    with pytest.raises(ValueError, match='A must be'):
        bidirectional_selective_scan_triton(u, u, _A(3, 4), B, B)
    with pytest.raises(ValueError, match='z must have shape'):
        bidirectional_selective_scan_triton(u, u, _A(2, 3, 4), B, B,
                                            z=torch.randn(1, 3, 4, device=DEVICE))


# ------------------------------------------------------------------- GPU, real shapes, compiled
def _cast(tensors, dtype, indices):
    """Activations (u, delta, B, C, z) in dtype; parameters (A, D, delta_bias) stay fp32."""
    return [t.to(dtype) if i in indices else t for i, t in enumerate(tensors)]


@gpu
@pytest.mark.parametrize('dtype,tol', [(torch.float32, 2e-4), (torch.bfloat16, 3e-2)])
def test_gpu_selective_scan_vim_shapes(dtype, tol, monkeypatch):
    monkeypatch.setitem(triton_utils.TUNING, 'chunk', None)
    batch, dim, length, n_state = 2, 384, 197, 16                     # Vim-Ti, 224 x 224
    tensors = [torch.randn(batch, dim, length, device='cuda'),
               _delta(batch, dim, length, softplus=True, device='cuda'),
               _A(dim, n_state, device='cuda'),
               torch.randn(batch, n_state, length, device='cuda'),
               torch.randn(batch, n_state, length, device='cuda'),
               torch.randn(dim, device='cuda'), torch.randn(batch, dim, length, device='cuda'),
               torch.randn(dim, device='cuda') * 0.5]
    check_against_naive(selective_scan_triton, selective_scan_naive,
                        _cast(tensors, dtype, (0, 1, 3, 4, 6)), dict(delta_softplus=True),
                        tol=tol)


@gpu
@pytest.mark.parametrize('dtype,tol', [(torch.float32, 2e-4), (torch.bfloat16, 3e-2)])
def test_gpu_cross_scan_vmamba_shapes(dtype, tol, monkeypatch):
    monkeypatch.setitem(triton_utils.TUNING, 'chunk', None)
    batch, dim, height, width, k, n_state = 2, 192, 28, 36, 4, 1      # VMamba-T stage 2
    tensors = [torch.randn(batch, dim, height, width, device='cuda'),
               _delta(batch, k, dim, height, width, softplus=True, device='cuda'),
               _A(k * dim, n_state, device='cuda'),
               torch.randn(batch, k, n_state, height, width, device='cuda'),
               torch.randn(batch, k, n_state, height, width, device='cuda'),
               torch.randn(k * dim, device='cuda'), torch.randn(k * dim, device='cuda')]
    check_against_naive(cross_scan_selective_scan_triton, cross_scan_selective_scan_naive,
                        _cast(tensors, dtype, (0, 1, 3, 4)),
                        dict(delta_softplus=True, directions=k), tol=tol)


@gpu
@pytest.mark.parametrize('dtype,tol', [(torch.float32, 2e-4), (torch.bfloat16, 3e-2)])
def test_gpu_bidirectional_vim_shapes(dtype, tol, monkeypatch):
    monkeypatch.setitem(triton_utils.TUNING, 'chunk', None)
    batch, dim, length, n_state = 2, 384, 197, 16
    tensors = [torch.randn(batch, 2, dim, length, device='cuda'),
               _delta(batch, 2, dim, length, softplus=True, device='cuda'),
               _A(2, dim, n_state, device='cuda'),
               torch.randn(batch, 2, n_state, length, device='cuda'),
               torch.randn(batch, 2, n_state, length, device='cuda'),
               torch.randn(2, dim, device='cuda'), torch.randn(batch, dim, length, device='cuda'),
               torch.randn(2, dim, device='cuda') * 0.5]
    check_against_naive(bidirectional_selective_scan_triton, bidirectional_selective_scan_naive,
                        _cast(tensors, dtype, (0, 1, 3, 4, 6)), dict(delta_softplus=True),
                        tol=tol)

"""Helpers shared by the kernel tests: inputs, backends under test, comparison against naive."""
import importlib
import importlib.util

import pytest
import torch

from mlla_kernels.dispatch import numba_status, triton_interpret


def triton_ready():
    """(ok, reason) for running the triton backend in these tests (interpreter on CPU)."""
    if importlib.util.find_spec('triton') is None:
        return False, 'triton is not installed'
    if not torch.cuda.is_available() and not triton_interpret():
        return False, 'no CUDA and TRITON_INTERPRET is not set'
    try:
        importlib.import_module('mlla_kernels.selective_scan.triton')
    except ImportError as err:
        return False, f'mlla_kernels triton kernels not importable: {err}'
    return True, ''


TRITON_OK, TRITON_WHY = triton_ready()
NUMBA_OK, NUMBA_WHY = numba_status()
DEVICE = 'cuda' if torch.cuda.is_available() else 'cpu'
needs_triton = pytest.mark.skipif(not TRITON_OK, reason=TRITON_WHY)
needs_numba = pytest.mark.skipif(not NUMBA_OK, reason=NUMBA_WHY)
# every fast backend; triton cases are kept few and tiny (the interpreter is slow)
FAST_BACKENDS = ['torch', pytest.param('numba', marks=needs_numba),
                 pytest.param('triton', marks=needs_triton)]


def backend_device(backend):
    """Where a backend's test tensors live: numba is a CPU backend."""
    return 'cpu' if backend == 'numba' else DEVICE


def raw_delta(*shape, softplus, dtype=torch.float64):
    """Raw deltas for softplus, else small positive step sizes."""
    if softplus:
        return torch.randn(*shape, dtype=dtype) * 0.5 - 1.0
    return torch.rand(*shape, dtype=dtype) * 0.4 + 0.05


def neg_A(*shape, dtype=torch.float64):
    return -torch.exp(torch.randn(*shape, dtype=dtype) * 0.5)


def leaves(tensors, dtype=None, device=None):
    """Fresh leaf copies requiring grad (None stays None)."""
    out = []
    for t in tensors:
        if t is None:
            out.append(None)
            continue
        t = t.detach().to(dtype=dtype or t.dtype, device=device or t.device)
        out.append(t.clone().requires_grad_(True))
    return out


# The scale a reference of exactly zero is judged on, such as A's gradient over a one-step
# sequence (no previous state): the compiled GPU kernels leave ~1e-9 of float32 rounding there
# (first GPU run, docs/kernels.md); any other reference keeps its own scale (floor 1e-6).
ZERO_SCALE = 1e-3


def assert_close_rel(actual, expected, tol, what):
    """Max abs error within tol of the reference's max magnitude (scale-free)."""
    assert actual.shape == expected.shape, f'{what}: shape {actual.shape} != {expected.shape}'
    expected = expected.detach().double().cpu()
    err = (actual.detach().double().cpu() - expected).abs().max().item()
    scale = expected.abs().max().item()
    assert err <= tol * (max(scale, 1e-6) if scale > 0 else ZERO_SCALE), \
        f'{what}: max err {err:.3g}, reference scale {scale:.3g}'


def check_against_naive(fn, ref, tensors, names, kwargs, dtype, tol, n_outputs=1,
                        device='cpu', prepare=None):
    """fn on ``dtype`` copies vs ref in float64: outputs and the gradient of every input.

    prepare(list_of_leaves) -> list of call arguments may make views (e.g. non-contiguous).
    """
    ours = leaves(tensors, dtype, device)
    theirs = leaves(tensors, torch.float64, 'cpu')
    args = prepare(ours) if prepare else ours
    out = fn(*args, **kwargs)
    out_ref = ref(*theirs, **kwargs)
    outs = out if n_outputs > 1 else (out,)
    outs_ref = out_ref if n_outputs > 1 else (out_ref,)
    loss = loss_ref = 0
    gen = torch.Generator().manual_seed(1)
    for i, (o, o_ref) in enumerate(zip(outs, outs_ref)):
        if i == 0:
            assert o.dtype == dtype, f'output dtype {o.dtype}, expected {dtype}'
        assert_close_rel(o, o_ref, tol, f'output {i}')
        weight = torch.randn(o_ref.shape, generator=gen, dtype=torch.float64)
        loss = loss + (o * weight.to(o.dtype).to(o.device)).sum()
        loss_ref = loss_ref + (o_ref * weight).sum()
    loss.backward()
    loss_ref.backward()
    for name, a, b in zip(names, ours, theirs):
        if a is None:
            continue
        assert a.grad is not None, f'no gradient for {name}'
        assert torch.isfinite(a.grad).all(), f'non-finite gradient for {name}'
        assert_close_rel(a.grad, b.grad, tol, f'gradient of {name}')


# (dtype, tolerance) per backend: float64 only where the backend computes in float64
PRECISIONS = {
    'torch': [(torch.float64, 1e-10), (torch.float32, 2e-5)],
    # float32 within fp32 rounding of the float64 reference; float64 with libm exp/log1p
    'numba': [(torch.float64, 1e-10), (torch.float32, 2e-6)],
    'triton': [(torch.float32, 1e-4)],
}

"""Vim bidirectional scan: naive vs two hand-flipped scans, backends vs naive."""
import pytest
import torch

from mlla_kernels import bidirectional_selective_scan
from mlla_kernels.bidirectional.naive import bidirectional_selective_scan_naive
from mlla_kernels.bidirectional.torch_impl import bidirectional_selective_scan_torch
from mlla_kernels.selective_scan.naive import selective_scan_naive

from kernel_checks import (FAST_BACKENDS, PRECISIONS, backend_device, check_against_naive,
                           neg_A, raw_delta)

NAMES = ('u', 'delta', 'A', 'B', 'C', 'D', 'z', 'delta_bias')


def make_inputs(batch, dim, length, n_state, options):
    softplus = 'softplus' in options
    return [torch.randn(batch, 2, dim, length, dtype=torch.float64),
            raw_delta(batch, 2, dim, length, softplus=softplus), neg_A(2, dim, n_state),
            torch.randn(batch, 2, n_state, length, dtype=torch.float64),
            torch.randn(batch, 2, n_state, length, dtype=torch.float64),
            torch.randn(2, dim, dtype=torch.float64) if 'D' in options else None,
            torch.randn(batch, dim, length, dtype=torch.float64) if 'z' in options else None,
            torch.randn(2, dim, dtype=torch.float64) * 0.5 if 'bias' in options else None]


def call(fn, **fixed):
    def run(u, delta, A, B, C, D, z, delta_bias, **kw):
        return fn(u, delta, A, B, C, D=D, z=z, delta_bias=delta_bias, **fixed, **kw)
    return run


def test_naive_is_forward_plus_flipped_backward():
    """Vim's definition: y_f + flip(scan of flipped x and z with the backward parameters)."""
    u, delta, A, B, C, D, z, bias = make_inputs(2, 3, 6, 4, ('D', 'z', 'bias', 'softplus'))
    fwd = selective_scan_naive(u[:, 0], delta[:, 0], A[0], B[:, 0], C[:, 0], D=D[0], z=z,
                               delta_bias=bias[0], delta_softplus=True)
    bwd = selective_scan_naive(u[:, 1].flip(-1), delta[:, 1].flip(-1), A[1], B[:, 1].flip(-1),
                               C[:, 1].flip(-1), D=D[1], z=z.flip(-1), delta_bias=bias[1],
                               delta_softplus=True).flip(-1)
    out = bidirectional_selective_scan_naive(u, delta, A, B, C, D=D, z=z, delta_bias=bias)
    torch.testing.assert_close(out, fwd + bwd, rtol=1e-12, atol=1e-12)


CASES = [
    # batch, dim, length, n_state, options
    (1, 2, 1, 1, ('D', 'z', 'bias', 'softplus')),             # L = 1
    (2, 3, 9, 4, ('D', 'z', 'bias', 'softplus')),
    (1, 4, 21, 16, ('D', 'bias', 'softplus')),                # Vim's N = 16, no gate
    (2, 2, 7, 4, ('z',)),                                      # no softplus
]


@pytest.mark.parametrize('backend', FAST_BACKENDS)
@pytest.mark.parametrize('case', CASES)
def test_backend_matches_naive(backend, case):
    if backend == 'triton' and case[2] > 9:
        pytest.skip('kept to tiny cases under the Triton interpreter (test_triton.py covers more)')
    tensors = make_inputs(*case)
    for dtype, tol in PRECISIONS[backend]:
        check_against_naive(call(bidirectional_selective_scan, backend=backend),
                            call(bidirectional_selective_scan_naive), tensors, NAMES,
                            dict(delta_softplus='softplus' in case[4]), dtype, tol,
                            device=backend_device(backend))


def test_torch_chunk_borders():
    tensors = make_inputs(2, 3, 19, 4, ('D', 'z', 'bias', 'softplus'))
    check_against_naive(call(bidirectional_selective_scan_torch, block_len=7, chunk_len=3),
                        call(bidirectional_selective_scan_naive), tensors, NAMES,
                        dict(delta_softplus=True), torch.float64, 1e-10)


@pytest.mark.parametrize('backend', FAST_BACKENDS)
def test_non_contiguous_inputs(backend):
    tensors = make_inputs(1, 3, 8, 4, ('D', 'z', 'bias', 'softplus'))

    def strided(ts):
        u, delta, A, B, C, D, z, bias = ts
        # Vim computes x for both directions from one projection: (batch, L, 2, Di) storage
        view = [u.permute(0, 3, 1, 2).contiguous().permute(0, 2, 3, 1),
                delta.transpose(-1, -2).contiguous().transpose(-1, -2), A,
                B.transpose(-1, -2).contiguous().transpose(-1, -2), C, D,
                z.transpose(1, 2).contiguous().transpose(1, 2), bias]
        assert not view[0].is_contiguous() and not view[6].is_contiguous()
        return view

    dtype, tol = PRECISIONS[backend][-1]
    check_against_naive(call(bidirectional_selective_scan, backend=backend),
                        call(bidirectional_selective_scan_naive), tensors, NAMES,
                        dict(delta_softplus=True), dtype, tol, device=backend_device(backend),
                        prepare=strided)

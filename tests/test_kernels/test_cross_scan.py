"""VMamba cross-scan: route order by hand, naive vs hand-built routes, backends vs naive."""
import pytest
import torch

from mlla_kernels import cross_scan_selective_scan
from mlla_kernels.cross_scan.naive import cross_scan_selective_scan_naive, route_indices
from mlla_kernels.cross_scan.torch_impl import cross_scan_selective_scan_torch
from mlla_kernels.selective_scan.naive import selective_scan_naive

from kernel_checks import (FAST_BACKENDS, PRECISIONS, assert_close_rel, backend_device,
                           check_against_naive, neg_A, raw_delta)

NAMES = ('u', 'delta', 'A', 'B', 'C', 'D', 'delta_bias')


def make_inputs(batch, dim, height, width, n_state, directions, options):
    softplus = 'softplus' in options
    k = directions
    return [torch.randn(batch, dim, height, width, dtype=torch.float64),
            raw_delta(batch, k, dim, height, width, softplus=softplus),
            neg_A(k * dim, n_state),
            torch.randn(batch, k, n_state, height, width, dtype=torch.float64),
            torch.randn(batch, k, n_state, height, width, dtype=torch.float64),
            torch.randn(k * dim, dtype=torch.float64) if 'D' in options else None,
            torch.randn(k * dim, dtype=torch.float64) * 0.5 if 'bias' in options else None]


def call(fn, **fixed):
    def run(u, delta, A, B, C, D, delta_bias, **kw):
        return fn(u, delta, A, B, C, D=D, delta_bias=delta_bias, **fixed, **kw)
    return run


def test_route_order_by_hand():
    # 2 x 3 map, pixels numbered row-major:  0 1 2 / 3 4 5
    rows, cols, rows_rev, cols_rev = (r.tolist() for r in route_indices(2, 3, 4))
    assert rows == [0, 1, 2, 3, 4, 5]
    assert cols == [0, 3, 1, 4, 2, 5]
    assert rows_rev == [5, 4, 3, 2, 1, 0]
    assert cols_rev == [5, 2, 4, 1, 3, 0]
    assert [r.tolist() for r in route_indices(2, 3, 2)] == [rows, rows_rev]
    assert [r.tolist() for r in route_indices(2, 3, 1)] == [rows]
    with pytest.raises(ValueError, match='directions'):
        route_indices(2, 3, 3)


@pytest.mark.parametrize('directions', [1, 2, 4])
def test_naive_matches_hand_built_routes(directions):
    """Route copies built pixel by pixel from an explicit visiting list, scanned, merged back."""
    batch, dim, height, width, n_state = 1, 2, 3, 4, 2
    u, delta, A, B, C, D, bias = make_inputs(batch, dim, height, width, n_state, directions,
                                             ('D', 'bias', 'softplus'))
    row_major = [(i, j) for i in range(height) for j in range(width)]
    col_major = [(i, j) for j in range(width) for i in range(height)]
    orders = {1: [row_major], 2: [row_major, row_major[::-1]],
              4: [row_major, col_major, row_major[::-1], col_major[::-1]]}[directions]
    expected = torch.zeros(batch, dim, height, width, dtype=torch.float64)
    for k, order in enumerate(orders):
        def gather(t):
            return torch.stack([t[..., i, j] for i, j in order], dim=-1)
        ch = slice(k * dim, (k + 1) * dim)
        y = selective_scan_naive(gather(u), gather(delta[:, k]), A[ch], gather(B[:, k]),
                                 gather(C[:, k]), D=D[ch], delta_bias=bias[ch],
                                 delta_softplus=True)
        for step, (i, j) in enumerate(order):
            expected[..., i, j] += y[..., step]
    out = cross_scan_selective_scan_naive(u, delta, A, B, C, D=D, delta_bias=bias,
                                          delta_softplus=True, directions=directions)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


CASES = [
    # batch, dim, height, width, n_state, directions, options
    (1, 2, 1, 1, 1, 4, ('D', 'bias', 'softplus')),            # a single pixel
    (2, 3, 3, 5, 1, 4, ('D', 'bias', 'softplus')),            # odd H != W, VMamba's N = 1
    (1, 2, 5, 3, 4, 2, ('softplus',)),
    (1, 2, 4, 6, 16, 1, ('D',)),                               # N = 16, no softplus
    (2, 2, 3, 4, 4, 4, ()),
]


@pytest.mark.parametrize('backend', FAST_BACKENDS)
@pytest.mark.parametrize('case', CASES)
def test_backend_matches_naive(backend, case):
    if backend == 'triton' and case[0] * case[2] * case[3] > 16:
        pytest.skip('kept to tiny cases under the Triton interpreter (test_triton.py covers more)')
    tensors = make_inputs(*case)
    for dtype, tol in PRECISIONS[backend]:
        check_against_naive(call(cross_scan_selective_scan, backend=backend, directions=case[5]),
                            call(cross_scan_selective_scan_naive, directions=case[5]), tensors,
                            NAMES, dict(delta_softplus='softplus' in case[6]), dtype, tol,
                            device=backend_device(backend))


@pytest.mark.parametrize('directions', [2, 4])
def test_torch_chunk_borders(directions):
    tensors = make_inputs(1, 2, 5, 7, 2, directions, ('D', 'bias', 'softplus'))
    check_against_naive(call(cross_scan_selective_scan_torch, directions=directions,
                             block_len=8, chunk_len=3),
                        call(cross_scan_selective_scan_naive, directions=directions), tensors,
                        NAMES, dict(delta_softplus=True), torch.float64, 1e-10)


@pytest.mark.parametrize('backend', FAST_BACKENDS)
def test_non_contiguous_inputs(backend):
    """channels-last u and B/C, and delta sliced from a wider tensor."""
    tensors = make_inputs(1, 2, 3, 4, 2, 4, ('D', 'bias', 'softplus'))

    def strided(ts):
        u, delta, A, B, C, D, bias = ts
        view = [u.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2),
                torch.cat([delta, delta], dim=2)[:, :, :2],
                A, B.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3),
                C.transpose(-1, -2).contiguous().transpose(-1, -2), D, bias]
        assert not view[0].is_contiguous() and not view[1].is_contiguous()
        return view

    dtype, tol = PRECISIONS[backend][-1]
    check_against_naive(call(cross_scan_selective_scan, backend=backend),
                        call(cross_scan_selective_scan_naive), tensors, NAMES,
                        dict(delta_softplus=True), dtype, tol, device=backend_device(backend),
                        prepare=strided)


@pytest.mark.parametrize('threads', [1, 2])
@pytest.mark.parametrize('softplus', [True, False])
@pytest.mark.parametrize('dy_layout', ['channels_last', 'contiguous'])
def test_numba_fused_n1_path(threads, softplus, dy_layout):
    """VMamba's layout (u and delta channels innermost, N = 1, no gate) runs the numba
    engine's fused N = 1 programs: against naive, outputs and every gradient, several chunks
    and channel blocks, dy with channels innermost (read in place) or not (gathered)."""
    options = ('D', 'bias', 'softplus') if softplus else ('D',)
    tensors = make_inputs(2, 70, 9, 11, 1, 4, options)

    def fn(u, delta, A, B, C, D, bias, **kw):   # channels innermost, as VMamba's SS2D
        u = u.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
        delta = delta.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
        return cross_scan_selective_scan(u, delta, A, B, C, D=D, delta_bias=bias,
                                         backend='numba', **kw)

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for dtype, tol in PRECISIONS['numba']:
            ours = [None if t is None else t.detach().to(dtype).requires_grad_(True)
                    for t in tensors]
            theirs = [None if t is None else t.detach().clone().requires_grad_(True)
                      for t in tensors]
            y = fn(*ours, delta_softplus=softplus)
            y_ref = cross_scan_selective_scan_naive(*theirs[:5], D=theirs[5],
                                                    delta_bias=theirs[6],
                                                    delta_softplus=softplus)
            assert_close_rel(y, y_ref, tol, 'output')
            weight = torch.randn(y_ref.shape, generator=torch.Generator().manual_seed(1),
                                 dtype=torch.float64)
            if dy_layout == 'channels_last':   # dy = weight, laid out channels-last
                loss = (y.permute(0, 2, 3, 1) * weight.permute(0, 2, 3, 1).to(dtype)).sum()
            else:
                loss = (y * weight.to(dtype)).sum()
            loss.backward()
            (y_ref * weight).sum().backward()
            for name, a, b in zip(NAMES, ours, theirs):
                if a is not None:
                    assert_close_rel(a.grad, b.grad, tol, f'gradient of {name}')
    finally:
        torch.set_num_threads(old)

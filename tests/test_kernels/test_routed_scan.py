"""Routes as data: the route vocabulary, and the routed scan of every backend against naive."""
import itertools

import numpy as np
import pytest
import torch

from mlla_kernels import (CROSS_SCAN_ROUTES, ROUTE_KINDS, Route, cross_scan_selective_scan,
                          routed_selective_scan, route_table)
from mlla_kernels.route_tables import as_route, route_order
from mlla_kernels.routed_scan.naive import routed_selective_scan_naive
from mlla_kernels.selective_scan.naive import selective_scan_naive

from kernel_checks import (FAST_BACKENDS, PRECISIONS, backend_device, check_against_naive,
                           neg_A, raw_delta)

NAMES = ('u', 'delta', 'A', 'B', 'C', 'D', 'delta_bias')

# the 4 x 4 examples of MHS-VM's route generators (row-major pixel numbers)
BY_HAND_4x4 = {
    'row': list(range(16)),
    'col': [0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15],
    'snake_row': [0, 1, 2, 3, 7, 6, 5, 4, 8, 9, 10, 11, 15, 14, 13, 12],
    'snake_col': [0, 4, 8, 12, 13, 9, 5, 1, 2, 6, 10, 14, 15, 11, 7, 3],
    'zigzag': [0, 1, 4, 8, 5, 2, 3, 6, 9, 12, 13, 10, 7, 11, 14, 15],
    'zigzag_mirror': [3, 2, 7, 11, 6, 1, 0, 5, 10, 15, 14, 9, 4, 8, 13, 12],
    'spiral': [0, 1, 2, 3, 7, 11, 15, 14, 13, 12, 8, 4, 5, 6, 10, 9],
    'spiral_flip': [12, 13, 14, 15, 11, 7, 3, 2, 1, 0, 4, 8, 9, 10, 6, 5],
}


@pytest.mark.parametrize('kind', ROUTE_KINDS)
def test_route_by_hand(kind):
    assert route_order(kind, 4, 4).tolist() == BY_HAND_4x4[kind]
    assert route_order(Route(kind, True), 4, 4).tolist() == BY_HAND_4x4[kind][::-1]


def test_spiral_non_square_by_hand():
    # 2 x 3:  0 1 2 / 3 4 5 ; 3 x 1: a column
    assert route_order('spiral', 2, 3).tolist() == [0, 1, 2, 5, 4, 3]
    assert route_order('spiral', 3, 1).tolist() == [0, 1, 2]
    assert route_order('spiral', 1, 3).tolist() == [0, 1, 2]
    assert route_order('zigzag', 2, 3).tolist() == [0, 1, 3, 4, 2, 5]


@pytest.mark.parametrize('kind', ROUTE_KINDS)
def test_every_route_is_a_permutation(kind):
    for h, w in itertools.chain(itertools.product(range(1, 13), repeat=2), [(7, 31), (33, 5)]):
        for reverse in (False, True):
            order = route_order(Route(kind, reverse), h, w)
            assert sorted(order.tolist()) == list(range(h * w)), (kind, h, w)


def test_route_table_inverse_and_cache():
    routes = ('spiral', 'spiral~', Route('zigzag'), ('snake_col', True))
    order, inverse = route_table(routes, 5, 7)
    assert order.shape == inverse.shape == (4, 35) and order.dtype == torch.int64
    for k in range(4):
        assert torch.equal(order[k][inverse[k]], torch.arange(35))
    again = route_table(routes, 5, 7)
    assert again[0] is order
    assert as_route('spiral~') == Route('spiral', True)
    with pytest.raises(ValueError, match='unknown route.*snake_row'):
        route_table(('diagonal',), 3, 3)
    with pytest.raises(ValueError, match='non-empty'):
        route_table((), 3, 3)


def make_inputs(batch, dim, height, width, n_state, k, with_options=True, u_per_route=False):
    u_shape = (batch, k, dim, height, width) if u_per_route else (batch, dim, height, width)
    return [torch.randn(*u_shape, dtype=torch.float64),
            raw_delta(batch, k, dim, height, width, softplus=True),
            neg_A(k * dim, n_state),
            torch.randn(batch, k, n_state, height, width, dtype=torch.float64),
            torch.randn(batch, k, n_state, height, width, dtype=torch.float64),
            torch.randn(k * dim, dtype=torch.float64) if with_options else None,
            torch.randn(k * dim, dtype=torch.float64) * 0.5 if with_options else None]


def call(fn, **fixed):
    def run(u, delta, A, B, C, D, delta_bias, **kw):
        return fn(u, delta, A, B, C, D=D, delta_bias=delta_bias, **fixed, **kw)
    return run


@pytest.mark.parametrize('u_per_route', [False, True])
@pytest.mark.parametrize('merge', [False, True])
def test_naive_equals_scanning_the_gathered_sequence(merge, u_per_route):
    """Each route's output is the plain scan of its gathered sequence (of the shared map u, or
    of its own map u[:, k]), put back at its pixels."""
    routes = ('snake_row', 'snake_row~', 'spiral', 'zigzag_mirror~')
    batch, dim, h, w, n = 2, 3, 3, 5, 4
    u, delta, A, B, C, D, bias = make_inputs(batch, dim, h, w, n, len(routes),
                                             u_per_route=u_per_route)
    out = routed_selective_scan_naive(u, delta, A, B, C, D=D, delta_bias=bias,
                                      routes=[as_route(r) for r in routes], merge=merge)
    expected = []
    for k, route in enumerate(routes):
        order = torch.from_numpy(route_order(route, h, w))
        sl = slice(k * dim, (k + 1) * dim)
        u_k = u[:, k] if u_per_route else u
        y = selective_scan_naive(u_k.flatten(2)[..., order], delta[:, k].flatten(2)[..., order],
                                 A[sl], B[:, k].flatten(2)[..., order],
                                 C[:, k].flatten(2)[..., order], D=D[sl], delta_bias=bias[sl],
                                 delta_softplus=True)
        pix = torch.empty_like(y)
        pix[..., order] = y
        expected.append(pix.view(batch, dim, h, w))
    expected = torch.stack(expected, 1)
    torch.testing.assert_close(out, expected.sum(1) if merge else expected, rtol=1e-12,
                               atol=1e-12)


def test_default_routes_are_the_cross_scan():
    u, delta, A, B, C, D, bias = make_inputs(1, 2, 3, 4, 1, 4)
    ours = routed_selective_scan(u, delta, A, B, C, D=D, delta_bias=bias, backend='naive')
    theirs = cross_scan_selective_scan(u, delta, A, B, C, D=D, delta_bias=bias, backend='naive')
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


SHAPES = [  # (batch, dim, H, W, N, routes)
    (2, 3, 3, 5, 4, ('snake_row', 'snake_row~', 'snake_col', 'snake_col~')),
    (1, 2, 1, 1, 2, ('spiral', 'spiral~', 'zigzag', 'zigzag~')),
    (1, 4, 1, 7, 16, ('zigzag_mirror', 'spiral_flip~')),
    (1, 2, 6, 2, 1, ('row', 'col', 'row~', 'col~', 'spiral')),
]


@pytest.mark.parametrize('backend', FAST_BACKENDS)
@pytest.mark.parametrize('merge', [False, True])
@pytest.mark.parametrize('shape', SHAPES, ids=lambda s: 'x'.join(map(str, s[:5])))
def test_backend_matches_naive(backend, merge, shape):
    batch, dim, h, w, n, routes = shape
    if backend == 'triton' and (n > 4 or h * w > 20):
        pytest.skip('interpreter: keep triton cases tiny')
    tensors = make_inputs(batch, dim, h, w, n, len(routes))
    fn = call(routed_selective_scan, backend=backend, routes=routes, merge=merge)
    ref = call(routed_selective_scan_naive, routes=[as_route(r) for r in routes], merge=merge)
    for dtype, tol in PRECISIONS[backend]:
        check_against_naive(fn, ref, tensors, NAMES, {}, dtype, tol,
                            device=backend_device(backend))


@pytest.mark.parametrize('backend', FAST_BACKENDS)
@pytest.mark.parametrize('merge', [False, True])
def test_backend_matches_naive_with_a_map_per_route(backend, merge):
    """u (batch, K, Di, H, W): route k reads u[:, k] (MHS-VM's heads in one call), channels
    innermost as the MHS layer passes it."""
    batch, dim, h, w, n = 2, 3, 3, 4, 4
    routes = ('snake_row', 'snake_row~', 'spiral', 'spiral~', 'row', 'col~')
    tensors = make_inputs(batch, dim, h, w, n, len(routes), u_per_route=True)

    def channels_innermost(args):
        u = args[0]
        return [u.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)] + args[1:]
    fn = call(routed_selective_scan, backend=backend, routes=routes, merge=merge)
    ref = call(routed_selective_scan_naive, routes=[as_route(r) for r in routes], merge=merge)
    for dtype, tol in PRECISIONS[backend]:
        check_against_naive(fn, ref, tensors, NAMES, {}, dtype, tol,
                            device=backend_device(backend), prepare=channels_innermost)


def test_bad_arguments():
    u, delta, A, B, C, D, bias = make_inputs(1, 2, 3, 4, 1, 4)
    with pytest.raises(ValueError, match=r'delta must have shape \(batch, K, Di, H, W\)'):
        routed_selective_scan(u, delta, A, B, C, routes=('row', 'col'), backend='naive')
    with pytest.raises(ValueError, match='unknown route'):
        routed_selective_scan(u, delta, A, B, C, routes=('row', 'col', 'x', 'y'))
    per_route = u.unsqueeze(1).expand(1, 3, 2, 3, 4)
    with pytest.raises(ValueError, match=r'u must have shape \(batch, K, Di, H, W\) with K=4'
                                         r'.*got \(1, 3, 2, 3, 4\)'):
        routed_selective_scan(per_route, delta, A, B, C, backend='naive')
    assert CROSS_SCAN_ROUTES[4][1] == Route('col')
    assert np.array_equal(route_order('col~', 2, 3), [5, 2, 4, 1, 3, 0])

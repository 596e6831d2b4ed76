"""The portable routed scan (:mod:`mlla_kernels.routed_scan.portable`: standard ops and one
``scan`` over chunks, what ``mlla_kernels::routed_scan`` becomes in an ONNX file) against a
step-by-step oracle written here (float64), on the edge shapes: one step, 63 and 65 steps
around the 64-step chunk, every route kind (MHS-VM's zigzag and spiral heads included), a map
per route, groups, the gate, no optional inputs, the routes apart. Fast: no ONNX needed.
"""
import pytest
import torch
import torch.nn.functional as F

from mlla_kernels.route_tables import ROUTE_KINDS, as_routes, route_order
from mlla_kernels.routed_scan.portable import CHUNK, route_orders, routed_scan_portable

from test_ops import op_inputs


def stepwise(u, delta, A, B, C, D, z, delta_bias, routes, delta_softplus, merge):
    """The routed scan one step at a time, from its definition (docs of mlla_kernels.library)."""
    batch, k, dim, height, width = delta.shape
    groups, n_state = B.shape[2], B.shape[3]
    length = height * width
    u = u.double().reshape(batch, -1, dim, length).expand(batch, k, dim, length)
    dt = delta.double().reshape(batch, k, dim, length)
    if delta_bias is not None:
        dt = dt + delta_bias.double()[None, :, :, None]
    if delta_softplus:
        dt = F.softplus(dt)
    B = B.double().reshape(batch, k, groups, n_state, length).repeat_interleave(dim // groups, 2)
    C = C.double().reshape(batch, k, groups, n_state, length).repeat_interleave(dim // groups, 2)
    y = torch.zeros(batch, k, dim, length, dtype=torch.float64)
    last = torch.zeros(batch, k, dim, n_state, dtype=torch.float64)
    for r, route in enumerate(as_routes(routes.split(','))):
        h = torch.zeros(batch, dim, n_state, dtype=torch.float64)
        for p in route_order(route, height, width):
            p = int(p)
            h = (torch.exp(dt[:, r, :, p, None] * A[r].double())
                 * h + (dt[:, r, :, p] * u[:, r, :, p])[..., None] * B[:, r, :, :, p])
            y[:, r, :, p] = (h * C[:, r, :, :, p]).sum(-1)
            if D is not None:
                y[:, r, :, p] += D[r].double() * u[:, r, :, p]
        last[:, r] = h
    if merge:
        y = y.sum(1)
    if z is not None:
        gate = F.silu(z.double().reshape(batch, dim, length))
        y = y * (gate if merge else gate[:, None])
    shape = (batch, dim, height, width) if merge else (batch, k, dim, height, width)
    return y.view(shape), last


# (inputs of test_ops.op_inputs, routes, merge)
CASES = {
    'one_step': (dict(height=1, width=1, k=1), 'row', True),
    'chunk_minus_one': (dict(height=7, width=9, k=1, dim=2), 'spiral~', True),
    'chunk_plus_one': (dict(height=5, width=13, dim=2), 'snake_row,zigzag~', True),
    'two_chunks_and_one': (dict(height=3, width=43, k=2, dim=2), 'col,snake_col~', True),
    'every_kind': (dict(height=6, width=11, k=len(ROUTE_KINDS), dim=2),
                   ','.join(ROUTE_KINDS), True),
    'every_kind_reversed': (dict(height=5, width=4, k=len(ROUTE_KINDS), dim=2),
                            ','.join(kind + '~' for kind in ROUTE_KINDS), True),
    'map_per_route': (dict(shared_u=False, k=4), 'row,col,row~,col~', True),
    'groups': (dict(dim=4, groups=2), 'zigzag_mirror,spiral_flip', True),
    'gate': (dict(with_z=True), 'row,spiral', True),
    'gate_routes_apart': (dict(with_z=True), 'snake_row,zigzag~', False),
    'routes_apart': (dict(), 'spiral,col~', False),
    'nothing_optional': (dict(with_d=False, with_bias=False), 'row,row~', True),
    'one_state': (dict(n_state=1), 'snake_col,zigzag', True),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_portable_matches_stepwise_oracle(case):
    shape, routes, merge = CASES[case]
    u, delta, A, B, C, D, z, bias = op_inputs(**shape, dtype=torch.float32)
    y, last, saved = routed_scan_portable(u, delta, A, B, C, D, z, bias, routes, True, merge)
    ref_y, ref_last = stepwise(u, delta, A, B, C, D, z, bias, routes, True, merge)
    assert saved == []
    assert y.dtype == u.dtype and last.dtype == torch.float32
    torch.testing.assert_close(y.double(), ref_y, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(last.double(), ref_last, rtol=1e-5, atol=1e-5)


def test_portable_float64_is_exact():
    """float64 in, float64 state and output: the chunked arithmetic is the recurrence's."""
    u, delta, A, B, C, D, z, bias = op_inputs(height=9, width=15, k=2, dim=4, groups=2,
                                              with_z=True, dtype=torch.float64)
    args = (u, delta, A, B, C, D, z, bias, 'spiral,snake_col~', True, True)
    y, last, _ = routed_scan_portable(*args)
    ref_y, ref_last = stepwise(*args)
    assert y.dtype == last.dtype == torch.float64
    torch.testing.assert_close(y, ref_y, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(last, ref_last, rtol=1e-10, atol=1e-10)


def test_symbolic_route_orders_match_tables():
    """The raster and snake walks built from arange (used when H, W are symbolic) are the
    route tables."""
    from mlla_kernels.routed_scan import portable
    for height, width in [(1, 1), (1, 7), (6, 1), (5, 8), (4, 4)]:
        for kind in portable.SYMBOLIC_KINDS:
            for route in (kind, kind + '~'):
                route = as_routes((route, ))[0]
                ours = portable._symbolic_order(route, height, width, 'cpu')
                assert ours.tolist() == route_order(route, height, width).tolist(), (route,
                                                                                     height,
                                                                                     width)


def test_chunk_is_a_power_of_two():
    assert CHUNK & (CHUNK - 1) == 0 and route_orders('row', 2, 3, 'cpu').shape == (1, 6)

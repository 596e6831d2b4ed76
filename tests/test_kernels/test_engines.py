"""The engines on route tables, beyond test_routed_scan's backend-vs-naive grid: chunk and
channel-block borders under any route, per-route outputs through the threads, half precision,
the meta engine; and the structure the backends share (the
backend table, where a choice came from, no import circle, no long parameter lists)."""
import ast
import pathlib
import warnings

import pytest
import torch

import mlla_kernels
from mlla_kernels import dispatch, routed_selective_scan, selfcheck
from mlla_kernels.route_tables import as_route
from mlla_kernels.routed_scan.naive import routed_selective_scan_naive

from kernel_checks import (DEVICE, NUMBA_OK, NUMBA_WHY, TRITON_OK, TRITON_WHY, assert_close_rel,
                           check_against_naive, leaves, needs_numba, needs_triton, neg_A,
                           raw_delta)

NAMES = ('u', 'delta', 'A', 'B', 'C', 'D', 'delta_bias')
MHS_HEAD = ('spiral', 'spiral~', 'spiral_flip', 'spiral_flip~')
KERNELS = pathlib.Path(mlla_kernels.__file__).resolve().parent


def map_inputs(batch, dim, height, width, n_state, k):
    return [torch.randn(batch, dim, height, width, dtype=torch.float64),
            raw_delta(batch, k, dim, height, width, softplus=True), neg_A(k * dim, n_state),
            torch.randn(batch, k, n_state, height, width, dtype=torch.float64),
            torch.randn(batch, k, n_state, height, width, dtype=torch.float64),
            torch.randn(k * dim, dtype=torch.float64),
            torch.randn(k * dim, dtype=torch.float64) * 0.5]


def call(fn, **fixed):
    def run(u, delta, A, B, C, D, delta_bias, **kw):
        return fn(u, delta, A, B, C, D=D, delta_bias=delta_bias, **fixed, **kw)
    return run


def naive(routes, merge):
    return call(routed_selective_scan_naive, routes=[as_route(r) for r in routes], merge=merge)


@needs_numba
@pytest.mark.parametrize('merge', [False, True])
def test_numba_chunk_and_block_borders_on_any_route(merge):
    """A 9 x 8 map (72 steps: two whole chunks of 32 and a partial one) walked by spirals and
    zigzags, 70 channels (a channel block and a remainder), N = 16, channels-last like VMamba's
    maps; every output and gradient against naive."""
    routes = ('spiral', 'zigzag~', 'snake_col', 'spiral_flip~')
    tensors = map_inputs(1, 70, 9, 8, 16, 4)

    def channels_last(ts):
        u, delta, *rest = ts
        return [u.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2),
                delta.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)] + rest

    check_against_naive(call(routed_selective_scan, backend='numba', routes=routes,
                             merge=merge), naive(routes, merge), tensors, NAMES, {},
                        torch.float32, 2e-6, prepare=channels_last)


def _routed_run(tensors, threads):
    torch.set_num_threads(threads)
    ours = leaves(tensors, torch.float32)
    y = routed_selective_scan(*ours[:5], D=ours[5], delta_bias=ours[6], routes=MHS_HEAD,
                              merge=False, backend='numba')
    (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
    return [y.detach()] + [t.grad for t in ours]


@needs_numba
def test_numba_per_route_outputs_same_with_one_and_two_threads():
    """Per-route outputs and per-channel gradients bit-identical with 1 and 2 threads; dB and
    dC (sums over channel blocks, whose width follows the threads) within fp32 rounding."""
    tensors = map_inputs(1, 64, 5, 9, 4, 4)
    before = torch.get_num_threads()
    try:
        one, two = _routed_run(tensors, 1), _routed_run(tensors, 2)
    finally:
        torch.set_num_threads(before)
    for name, a, b in zip(('y',) + NAMES, one, two):
        if name in ('B', 'C'):
            assert_close_rel(b, a, 1e-6, f'gradient of {name}')
        else:
            assert torch.equal(a, b), name


@needs_numba
def test_numba_bf16_routed_computes_in_float32():
    tensors = [t.to(torch.bfloat16) for t in map_inputs(1, 8, 5, 3, 4, 4)]
    ours = leaves(tensors)
    y = routed_selective_scan(*ours[:5], D=ours[5], delta_bias=ours[6], routes=MHS_HEAD,
                              merge=False, backend='numba')
    ref = naive(MHS_HEAD, False)(*[t.double() for t in tensors])
    assert y.dtype == torch.bfloat16 and y.shape == ref.shape
    assert_close_rel(y, ref, 2e-2, 'bf16 output')
    y.float().sum().backward()
    assert all(t.grad.dtype == torch.bfloat16 and torch.isfinite(t.grad).all() for t in ours)


@needs_triton
@pytest.mark.parametrize('merge', [False, True])
def test_triton_chunk_borders_on_any_route(merge, monkeypatch):
    """Chunks of 4 steps over a 3 x 5 map (four chunks, the last partial): the adjoint reads
    the order table in reverse lanes across every border."""
    from mlla_kernels import triton_utils
    monkeypatch.setitem(triton_utils.TUNING, 'chunk', 4)
    routes = ('zigzag', 'spiral~')
    check_against_naive(call(routed_selective_scan, backend='triton', routes=routes,
                             merge=merge), naive(routes, merge), map_inputs(1, 2, 3, 5, 2, 2),
                        NAMES, {}, torch.float32, 1e-4, device=DEVICE)


def test_meta_tensors_get_shapes_from_every_operation():
    """On meta tensors 'auto' runs the meta engine: the shapes and dtypes of the real outputs."""
    meta = dict(device='meta')
    u, delta = torch.empty(2, 3, 4, 5, **meta), torch.empty(2, 4, 3, 4, 5, **meta)
    A, B = torch.empty(12, 16, **meta), torch.empty(2, 4, 16, 4, 5, **meta)
    apart = mlla_kernels.routed_selective_scan(u, delta, A, B, B, routes=MHS_HEAD, merge=False)
    assert apart.shape == (2, 4, 3, 4, 5) and apart.device.type == 'meta'
    assert mlla_kernels.cross_scan_selective_scan(u, delta, A, B, B).shape == (2, 3, 4, 5)
    x = torch.empty(1, 6, 9, dtype=torch.bfloat16, **meta)
    y, last = mlla_kernels.selective_scan(x, x, torch.empty(6, 4, **meta),
                                          torch.empty(1, 4, 9, dtype=torch.bfloat16, **meta),
                                          torch.empty(1, 4, 9, dtype=torch.bfloat16, **meta),
                                          return_last_state=True)
    assert (y.shape, y.dtype, last.shape, last.dtype) == ((1, 6, 9), torch.bfloat16, (1, 6, 4),
                                                           torch.float32)
    with pytest.raises(RuntimeError, match="backend='meta' computes shapes only"):
        mlla_kernels.selective_scan(*[torch.randn(1, 2, 3)] * 2, -torch.ones(2, 1),
                                    torch.ones(1, 1, 3), torch.ones(1, 1, 3), backend='meta')
    assert 'meta' in mlla_kernels.available_backends('meta')
    assert 'meta' not in mlla_kernels.available_backends('cpu')


# ------------------------------------------------------------------ structure
def test_backend_table_rows_and_engine_binding():
    assert dispatch.BACKENDS == tuple(row.name for row in dispatch.BACKENDS_TABLE)
    assert dispatch.KERNEL_BACKENDS == ('auto',) + dispatch.BACKENDS
    for row in dispatch.BACKENDS_TABLE:
        assert row.dtypes and (row.auto_rank == 0) == (not row.auto_devices), row.name
    # an operation without a module of its own runs on the row's engine, under its own name
    impl = dispatch.get_impl('cross_scan_selective_scan', 'meta')
    assert impl.__name__ == 'cross_scan_selective_scan_meta'
    with pytest.raises(ImportError, match='no engine in its table row'):
        dispatch.TABLE['x'] = dispatch.BACKENDS_TABLE[0]._replace(name='x')
        try:
            dispatch.get_impl('cross_scan_selective_scan', 'x')
        finally:
            del dispatch.TABLE['x']


def test_request_records_where_the_backend_came_from(monkeypatch):
    monkeypatch.delenv(dispatch.ENV_VAR, raising=False)
    assert dispatch.request('auto') == ('auto', 'auto')
    assert dispatch.request('torch') == ('torch', 'caller')
    monkeypatch.setenv(dispatch.ENV_VAR, 'Naive')
    assert dispatch.request('auto') == ('naive', 'environment')
    assert dispatch.request('numba') == ('numba', 'caller')


def _module_imports(path):
    """Modules of this package imported at module level by ``path`` (relative imports)."""
    package = path.relative_to(KERNELS.parent).with_suffix('').parts[:-1]
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[:len(package) - node.level + 1]
            for alias in node.names:
                parts = base + tuple(filter(None, (node.module or '').split('.')))
                found.add('.'.join(parts + (alias.name,)))
                found.add('.'.join(parts))
    return found


def test_no_import_circle_in_the_package():
    """Module-level imports between our modules form no cycle (dispatch <-> selfcheck was)."""
    graph = {}
    for path in KERNELS.rglob('*.py'):
        name = '.'.join(path.relative_to(KERNELS.parent).with_suffix('').parts)
        graph[name.removesuffix('.__init__')] = _module_imports(path)
    modules = set(graph)
    graph = {m: {d for d in deps if d in modules and d != m} for m, deps in graph.items()}
    state = {}

    def visit(m, trail):
        if state.get(m) == 'open':
            raise AssertionError(f'import circle: {" -> ".join(trail + [m])}')
        if state.get(m) != 'done':
            state[m] = 'open'
            for d in sorted(graph[m]):
                if not d.startswith(m + '.'):     # a package importing its own submodule
                    visit(d, trail + [m])
            state[m] = 'done'
    for m in sorted(graph):
        visit(m, [])


def test_no_function_outside_triton_kernels_takes_more_than_16_parameters():
    offenders = []
    for path in KERNELS.rglob('*.py'):
        for fn in ast.walk(ast.parse(path.read_text())):
            if isinstance(fn, (ast.FunctionDef, ast.Lambda)) and not any(
                    'triton.jit' in ast.unparse(d) for d in getattr(fn, 'decorator_list', [])):
                a = fn.args
                count = len(a.posonlyargs + a.args + a.kwonlyargs)
                if count > 16:
                    offenders.append(f'{path.name}:{getattr(fn, "name", "lambda")} ({count})')
    assert not offenders, offenders


# ------------------------------------------------------------------ the self-check
@needs_triton
def test_selfcheck_covers_the_routed_scan(monkeypatch):
    """A routed call that resolves to triton on a (simulated) GPU is checked against torch,
    per set of routes and merge; a wrong routed kernel makes 'auto' fall back to torch."""
    selfcheck.reset()
    monkeypatch.delenv(selfcheck.ENV_VAR, raising=False)
    monkeypatch.delenv(dispatch.ENV_VAR, raising=False)
    monkeypatch.setattr(selfcheck, 'applies', lambda device: True)
    real_resolve = dispatch.resolve_backend
    monkeypatch.setattr(dispatch, 'resolve_backend', lambda backend, device, dtype=None: (
        'triton' if backend == 'auto' else real_resolve(backend, device, dtype)))
    monkeypatch.setattr(selfcheck, 'PROBLEM', dict(batch=1, channels=2, length=9, height=3,
                                                   width=4))
    u, delta, A, B, C, D, bias = (t.float().to(DEVICE) for t in map_inputs(1, 2, 3, 4, 2, 2))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('error', selfcheck.KernelSelfCheckWarning)
            routed_selective_scan(u, delta, A, B, C, routes=('spiral', 'zigzag~'), merge=False)
        (result,) = selfcheck.results()
        assert result.ok and result.op == 'routed_selective_scan'
        assert result.structure == {'K': 2, 'routes': 'spiral,zigzag~', 'merge': False,
                                    'u_per_route': False}
        assert {'y', 'grad u', 'grad delta', 'grad A', 'grad B', 'grad C'} <= set(result.errors)

        real_bind = mlla_kernels.routes.bind

        def broken(op, engine, backend):
            run = real_bind(op, engine, backend)
            return (lambda *a, **k: run(*a, **k) * 1.5) if backend == 'triton' else run
        monkeypatch.setattr(mlla_kernels.routes, 'bind', broken)
        monkeypatch.setattr(dispatch, '_BOUND', {})
        with pytest.warns(selfcheck.KernelSelfCheckWarning, match='routed_selective_scan'):
            y = routed_selective_scan(u, delta, A, B, C, routes=('snake_row', 'col'))
        assert torch.isfinite(y).all() and len(selfcheck.results()) == 2
    finally:
        selfcheck.reset()

"""The scans as registered operators (``torch.ops.mlla_kernels``, :mod:`mlla_kernels.library`).

``torch.library.opcheck`` checks the operator ``routed_scan`` (schema, fake implementation
against the real one, the registered autograd formula, AOT dispatch with dynamic shapes) on
the edge shapes of the kernel tests, on the engines that run here (numba on CPU; Triton under
its interpreter, one tiny case). The public scans are operators too; they keep their Python
signatures, errors and ``backend=``.
"""
import pytest
import torch

import mlla_kernels
from mlla_kernels import library
from mlla_kernels.routed_scan.naive import routed_selective_scan_naive

from kernel_checks import (NUMBA_OK, NUMBA_WHY, TRITON_OK, TRITON_WHY, leaves, needs_numba,
                           neg_A, raw_delta)

ENGINES = [pytest.param('numba', marks=pytest.mark.skipif(not NUMBA_OK, reason=NUMBA_WHY))]


def op_inputs(batch=1, k=2, dim=3, height=2, width=5, n_state=2, groups=1, shared_u=True,
              with_d=True, with_z=False, with_bias=True, dtype=torch.float32,
              channels_last=False):
    """Map-form arguments of ``mlla_kernels::routed_scan`` (see :mod:`mlla_kernels.library`)."""
    gen = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64)
    u = randn(batch, 1 if shared_u else k, dim, height, width)
    if channels_last:   # channels innermost, as the backbones hand them over
        u = u.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
    delta = raw_delta(batch, k, dim, height, width, softplus=True)
    A = neg_A(k, dim, n_state)
    B, C = randn(batch, k, groups, n_state, height, width), randn(batch, k, groups, n_state,
                                                                  height, width)
    D = randn(k, dim) if with_d else None
    z = randn(batch, dim, height, width) if with_z else None
    bias = randn(k, dim) * 0.1 if with_bias else None
    return [None if t is None else t.to(dtype) for t in (u, delta, A, B, C, D, z, bias)]


# edge shapes: one step, one state, chunk boundaries (64 +- 1 steps), groups, a route per u,
# no optional inputs, the gate, channels-last u, half and double precision, routes apart
EDGE_CASES = {
    'one_step': dict(height=1, width=1, k=1),
    'one_state': dict(n_state=1),
    'chunk_minus_one': dict(height=7, width=9, k=1, dim=2),
    'chunk_plus_one': dict(height=5, width=13, dim=2),
    'groups': dict(dim=4, groups=2),
    'route_per_u': dict(shared_u=False, k=4),
    'nothing_optional': dict(with_d=False, with_bias=False),
    'gate': dict(with_z=True),
    'channels_last': dict(channels_last=True, dim=4),
    'bfloat16': dict(dtype=torch.bfloat16),
    'float64': dict(dtype=torch.float64),
}
ROUTES = {'one_step': 'row', 'chunk_minus_one': 'spiral~', 'route_per_u': 'row,col,row~,col~'}


def op_args(case, engine, merge=True, requires_grad=True):
    tensors = op_inputs(**EDGE_CASES[case])
    if requires_grad:
        tensors = leaves(tensors)
    routes = ROUTES.get(case, 'snake_row,zigzag~')
    return (*tensors, routes, True, merge, engine, requires_grad)


@pytest.mark.parametrize('engine', ENGINES)
@pytest.mark.parametrize('case', sorted(EDGE_CASES))
def test_opcheck_routed_scan(case, engine):
    merge = case != 'gate'   # the gate with the routes apart, the rest merged
    torch.library.opcheck(torch.ops.mlla_kernels.routed_scan.default,
                          op_args(case, engine, merge))


@pytest.mark.parametrize('engine', ENGINES)
def test_opcheck_without_gradients(engine):
    """save=False: nothing is kept, the fake implementation says so too."""
    torch.library.opcheck(torch.ops.mlla_kernels.routed_scan.default,
                          op_args('gate', engine, requires_grad=False))


@pytest.mark.skipif(not TRITON_OK, reason=TRITON_WHY)
def test_opcheck_triton_engine():
    """The Triton engine behind the same operator (interpreter on CPU: one tiny case)."""
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    args = [t.to(device) if isinstance(t, torch.Tensor) else t
            for t in op_args('groups', 'triton')]
    args = [t.detach().requires_grad_() if isinstance(t, torch.Tensor) else t for t in args]
    torch.library.opcheck(torch.ops.mlla_kernels.routed_scan.default, args,
                          test_utils=('test_schema', 'test_autograd_registration',
                                      'test_faketensor'))


def strides(t):
    """The strides that matter (those of dims longer than 1)."""
    return tuple(s for n, s in zip(t.shape, t.stride()) if n > 1)


@pytest.mark.parametrize('engine', ENGINES)
@pytest.mark.parametrize('case', ['chunk_plus_one', 'route_per_u', 'channels_last', 'gate'])
def test_fake_matches_real(case, engine):
    """Shapes, dtypes and strides of the fake implementation are the real ones, forward and
    backward."""
    args = op_args(case, engine, merge=case != 'gate')
    real = torch.ops.mlla_kernels.routed_scan(*args)
    from torch._subclasses.fake_tensor import FakeTensorMode
    with FakeTensorMode() as mode:
        fake_args = [mode.from_tensor(t) if isinstance(t, torch.Tensor) else t for t in args]
        fake = torch.ops.mlla_kernels.routed_scan(*fake_args)
    flat_real = [real[0], real[1], *real[2]]
    flat_fake = [fake[0], fake[1], *fake[2]]
    assert len(flat_real) == len(flat_fake) == 3
    for r, f in zip(flat_real, flat_fake):
        assert (r.shape, r.dtype, strides(r)) == (f.shape, f.dtype, strides(f))

    tensors = args[:8]
    dy = torch.randn_like(real[0])
    grads = torch.ops.mlla_kernels.routed_scan_backward(dy, None, real[2], *tensors, *args[8:12])
    with FakeTensorMode() as mode:
        fake_in = [mode.from_tensor(t) if isinstance(t, torch.Tensor) else t
                   for t in (dy, real[2][0], *tensors)]
        fake_grads = torch.ops.mlla_kernels.routed_scan_backward(
            fake_in[0], None, [fake_in[1]], *fake_in[2:], *args[8:12])
    assert len(grads) == len(fake_grads) == sum(t is not None for t in tensors)
    for g, f, t in zip(grads, fake_grads, [t for t in tensors if t is not None]):
        assert g.shape == f.shape == t.shape and g.dtype == f.dtype == t.dtype
        assert strides(g) == strides(f)


@needs_numba
def test_operator_matches_naive():
    """The operator's values and gradients are the routed scan's (naive oracle, float64)."""
    u, delta, A, B, C, D, z, bias = op_inputs(dim=2, height=3, width=4, dtype=torch.float64,
                                              with_z=False)
    args = leaves([u, delta, A, B, C, D, bias])
    y, _, _ = torch.ops.mlla_kernels.routed_scan(
        args[0], args[1], args[2], args[3], args[4], args[5], None, args[6], 'spiral,col~',
        True, True, 'numba', True)
    ref_args = leaves([u[:, 0], delta, A.flatten(0, 1), B[:, :, 0], C[:, :, 0], D.flatten(),
                       bias.flatten()])
    ref = routed_selective_scan_naive(*ref_args[:5], D=ref_args[5], delta_bias=ref_args[6],
                                      delta_softplus=True, routes=('spiral', 'col~'))
    torch.testing.assert_close(y, ref)
    w = torch.randn_like(y)
    (y * w).sum().backward()
    (ref * w).sum().backward()
    for ours, theirs in zip(args, ref_args):
        torch.testing.assert_close(ours.grad.reshape(theirs.grad.shape), theirs.grad)


def test_public_scans_are_operators():
    """Each public scan is ``torch.ops.mlla_kernels.<name>``; the operator and the Python
    function agree, and the function's errors are unchanged."""
    for name in library.PUBLIC_SCHEMAS:
        assert hasattr(torch.ops.mlla_kernels, name)
    u, delta, A, B, C, D, _, bias = op_inputs(dim=2, height=3, width=4)
    args = (u[:, 0], delta, A.flatten(0, 1), B[:, :, 0], C[:, :, 0])
    y_op = torch.ops.mlla_kernels.routed_selective_scan(*args, routes='row,snake_col',
                                                        backend='torch')
    y_fn = mlla_kernels.routed_selective_scan(*args, routes=('row', 'snake_col'),
                                              backend='torch')
    torch.testing.assert_close(y_op, y_fn)
    with pytest.raises(ValueError, match='directions must be 1, 2 or 4'):
        mlla_kernels.cross_scan_selective_scan(*args, directions=3)
    with pytest.raises(ValueError, match="backend must be one of"):
        mlla_kernels.routed_selective_scan(*args, routes=('row', 'col'), backend='cuda')


def test_a_second_copy_registers_its_own_namespace():
    """Another checkout's package loaded beside ours (``benchmark --against DIR``) registers
    its operators under its own name instead of clashing with ``mlla_kernels``, and runs; its
    compiled numba kernels go to a cache folder of its own (cached code names its module: a
    folder shared with ``mlla_kernels`` failed to load, "Can't get attribute 'WorkN1'")."""
    import os.path as osp
    import sys

    from mlla_kernels.benchmark import load_checkout
    name = 'mlla_kernels_second_copy'
    try:
        copy = load_checkout(osp.dirname(mlla_kernels.__file__), name=name)
        assert copy.library.NAMESPACE == name and hasattr(torch.ops, name)
        assert hasattr(getattr(torch.ops, name), 'routed_scan')
        import importlib
        from mlla_kernels import numba_cache
        theirs = importlib.import_module(f'{name}.numba_cache').engine_cache_dir()
        assert theirs == f'{numba_cache.engine_cache_dir()}-{name}'
        u, delta, A, B, C, D, _, bias = op_inputs(dim=2, height=3, width=4)
        args = (u[:, 0], delta, A.flatten(0, 1), B[:, :, 0], C[:, :, 0])
        torch.testing.assert_close(
            copy.routed_selective_scan(*args, routes=('row', 'col'), backend='torch'),
            mlla_kernels.routed_selective_scan(*args, routes=('row', 'col'), backend='torch'))
    finally:
        for module in [m for m in sys.modules if m == name or m.startswith(name + '.')]:
            del sys.modules[module]


def test_backward_op_refuses_an_empty_save():
    args = op_args('one_state', 'numba' if NUMBA_OK else 'meta', requires_grad=False)
    with pytest.raises(RuntimeError, match='saved nothing'):
        torch.ops.mlla_kernels.routed_scan_backward(None, None, [], *args[:12])


def test_unknown_engine_is_named():
    args = list(op_args('one_state', 'numba', requires_grad=False))
    args[11] = 'torch'
    with pytest.raises(ValueError, match='backend must name an engine'):
        torch.ops.mlla_kernels.routed_scan(*args)


@pytest.mark.parametrize('op', ['selective_scan', 'routed_selective_scan'])
def test_compiled_public_scan_is_one_graph(op):
    """torch.compile(fullgraph=True) of a public scan: no graph break, eager values and
    gradients (whatever 'auto' runs on CPU)."""
    u, delta, A, B, C, D, _, bias = op_inputs(dim=2, height=3, width=4)
    if op == 'selective_scan':
        args = leaves([u[:, 0].flatten(-2), delta[:, 0].flatten(-2), A[0], B[:, 0, 0].flatten(-2),
                       C[:, 0, 0].flatten(-2), D[0], bias[0]])

        def fn(u, delta, A, B, C, D, bias):
            return mlla_kernels.selective_scan(u, delta, A, B, C, D=D, delta_bias=bias,
                                               delta_softplus=True)
    else:
        args = leaves([u[:, 0], delta, A.flatten(0, 1), B[:, :, 0], C[:, :, 0], D.flatten(),
                       bias.flatten()])

        def fn(u, delta, A, B, C, D, bias):
            return mlla_kernels.routed_selective_scan(u, delta, A, B, C, D=D, delta_bias=bias,
                                                      routes=('snake_row', 'zigzag~'))
    explanation = torch._dynamo.explain(fn)(*args)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    torch._dynamo.reset()
    compiled = torch.compile(fn, fullgraph=True, backend='aot_eager')
    y = compiled(*args)
    y.sum().backward()
    grads = [t.grad for t in args]
    ref_args = leaves(args)
    ref = fn(*ref_args)
    ref.sum().backward()
    torch.testing.assert_close(y, ref)
    for g, t in zip(grads, ref_args):
        torch.testing.assert_close(g, t.grad)

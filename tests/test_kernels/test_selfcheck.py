"""The runtime self-check (mlla_kernels.selfcheck) on a simulated GPU.

Without a GPU the check is simulated: ``applies`` is made true for CPU tensors and 'auto' is made
to pick triton on CPU as it does on CUDA; the Triton kernels then run under the interpreter
(tests/conftest.py). A wrong kernel is simulated by replacing an operation's triton
implementation with one whose output, gradient or compilation is broken.
"""
import importlib
import warnings

import pytest
import torch

import mlla_kernels
from mlla_kernels import (bidirectional_selective_scan, cross_scan_selective_scan, dispatch,
                          selective_scan, selfcheck)
from mlla_kernels.selfcheck import KernelSelfCheckWarning

from kernel_checks import DEVICE, TRITON_OK, TRITON_WHY

pytestmark = pytest.mark.skipif(not TRITON_OK, reason=TRITON_WHY)


@pytest.fixture
def simulated_gpu(monkeypatch):
    """Checks apply to DEVICE and 'auto' resolves to triton there; small check problems."""
    selfcheck.reset()
    monkeypatch.delenv(selfcheck.ENV_VAR, raising=False)
    monkeypatch.delenv(dispatch.ENV_VAR, raising=False)
    monkeypatch.setattr(selfcheck, 'applies', lambda device: True)
    real_resolve = dispatch.resolve_backend
    monkeypatch.setattr(dispatch, 'resolve_backend', lambda backend, device, dtype=None: (
        'triton' if backend == 'auto' else real_resolve(backend, device, dtype)))
    # several chunks of the interpreter's chunk (16) and a partial one, kept small
    monkeypatch.setattr(selfcheck, 'PROBLEM',
                        dict(batch=1, channels=2, length=37, height=5, width=7))
    yield
    selfcheck.reset()


@pytest.fixture
def chosen(monkeypatch):
    """The backend each public call ran (the check's own runs are not counted)."""
    calls = []
    real = mlla_kernels.get_impl

    def spy(op, backend):
        calls.append(backend)
        return real(op, backend)

    monkeypatch.setattr(mlla_kernels, 'get_impl', spy)
    return calls


def scan_args(dtype=torch.float32, n_state=4, length=9):
    return dict(u=torch.randn(1, 4, length, device=DEVICE).to(dtype),
                delta=torch.randn(1, 4, length, device=DEVICE).to(dtype),
                A=-torch.rand(4, n_state, device=DEVICE) - 0.1,
                B=torch.randn(1, n_state, length, device=DEVICE).to(dtype),
                C=torch.randn(1, n_state, length, device=DEVICE).to(dtype),
                D=torch.randn(4, device=DEVICE), delta_softplus=True)


def replace_triton_impl(monkeypatch, op, make_wrong):
    """Replace ``op``'s triton implementation by ``make_wrong(real)``."""
    module = importlib.import_module(f'mlla_kernels.{op}.triton')
    name = dict(selective_scan='selective_scan_triton',
                cross_scan='cross_scan_selective_scan_triton',
                bidirectional='bidirectional_selective_scan_triton')[op]
    monkeypatch.setattr(module, name, make_wrong(getattr(module, name)))


def offset_output(real):
    def wrong(*args, **kwargs):
        out = real(*args, **kwargs)
        if isinstance(out, tuple):
            return (out[0] + 0.5,) + out[1:]
        return out + 0.5
    return wrong


class _ScaleGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * 1.5


def wrong_grad_of_B(real):
    def wrong(u, delta, A, B, C, *args, **kwargs):
        return real(u, delta, A, _ScaleGrad.apply(B), C, *args, **kwargs)
    return wrong


def fails_to_compile(real):
    def wrong(*args, **kwargs):
        raise RuntimeError('PTX assembly aborted')
    return wrong


def test_correct_kernels_pass_and_triton_runs(simulated_gpu, chosen):
    args = scan_args()
    with warnings.catch_warnings():
        warnings.simplefilter('error', KernelSelfCheckWarning)
        y = selective_scan(**args)
    assert chosen == ['triton']
    (result,) = selfcheck.results()
    assert result.ok and result.op == 'selective_scan' and result.n_state == 4
    assert result.dtypes['u'] == 'float32'
    # forward and the gradient of every input of the generated problem were compared
    assert {'y', 'last_state', 'grad u', 'grad delta', 'grad A', 'grad B', 'grad C',
            'grad D'} <= set(result.errors)
    assert result.max_rel_err < 1e-4
    torch.testing.assert_close(y, selective_scan(**args, backend='torch'), rtol=1e-4, atol=1e-5)


def test_wrong_forward_warns_once_and_falls_back_to_torch(simulated_gpu, chosen, monkeypatch):
    replace_triton_impl(monkeypatch, 'selective_scan', offset_output)
    args = scan_args()
    with pytest.warns(KernelSelfCheckWarning, match=r'selective_scan on .*max abs err 0\.5') as rec:
        y = selective_scan(**args)
    message = str(rec[0].message)
    assert 'float32' in message and 'max rel err' in message and "'torch' backend" in message
    assert chosen == ['torch']
    torch.testing.assert_close(y, selective_scan(**args, backend='torch'))
    # from then on: torch, without another check or warning
    with warnings.catch_warnings():
        warnings.simplefilter('error', KernelSelfCheckWarning)
        selective_scan(**scan_args())
    assert chosen[-1] == 'torch' and len(selfcheck.results()) == 1


def test_wrong_gradient_is_caught(simulated_gpu, chosen, monkeypatch):
    """The forward is right; only dB is off: the check must still fail."""
    replace_triton_impl(monkeypatch, 'cross_scan', wrong_grad_of_B)
    u = torch.randn(1, 2, 3, 4, device=DEVICE)
    delta = torch.randn(1, 4, 2, 3, 4, device=DEVICE)
    A = -torch.rand(8, 1, device=DEVICE) - 0.1
    B, C = torch.randn(1, 4, 1, 3, 4, device=DEVICE), torch.randn(1, 4, 1, 3, 4, device=DEVICE)
    with pytest.warns(KernelSelfCheckWarning, match='worst grad B'):
        cross_scan_selective_scan(u, delta, A, B, C)
    (result,) = selfcheck.results()
    assert not result.ok and result.structure == {'K': 4} and result.n_state == 1
    assert result.errors['y'][1] < 1e-4                      # the forward agreed
    assert result.errors['grad B'][1] > 0.1
    assert chosen == ['torch']


def test_kernel_that_raises_falls_back(simulated_gpu, chosen, monkeypatch):
    replace_triton_impl(monkeypatch, 'bidirectional', fails_to_compile)
    u = torch.randn(1, 2, 3, 6, device=DEVICE)
    B = torch.randn(1, 2, 4, 6, device=DEVICE)
    A = -torch.rand(2, 3, 4, device=DEVICE) - 0.1
    with pytest.warns(KernelSelfCheckWarning, match='raised RuntimeError: PTX assembly aborted'):
        y = bidirectional_selective_scan(u, u, A, B, B)
    assert chosen == ['torch'] and torch.isfinite(y).all()


def test_explicit_triton_is_kept_after_the_warning(simulated_gpu, chosen, monkeypatch):
    replace_triton_impl(monkeypatch, 'selective_scan', offset_output)
    args = scan_args()
    with pytest.warns(KernelSelfCheckWarning, match='requested explicitly and is kept'):
        y = selective_scan(**args, backend='triton')
    assert chosen == ['triton']
    torch.testing.assert_close(y, selective_scan(**args, backend='torch') + 0.5,
                               rtol=1e-4, atol=1e-4)
    monkeypatch.setenv(dispatch.ENV_VAR, 'triton')          # the env override is explicit too
    selective_scan(**args)
    assert chosen[-1] == 'triton'
    monkeypatch.delenv(dispatch.ENV_VAR)                    # 'auto' is told, and falls back
    with pytest.warns(KernelSelfCheckWarning, match="'torch' backend"):
        selective_scan(**args)
    assert chosen[-1] == 'torch' and len(selfcheck.results()) == 1


def test_environment_variable_turns_the_check_off(simulated_gpu, chosen, monkeypatch):
    replace_triton_impl(monkeypatch, 'selective_scan', offset_output)
    monkeypatch.setenv(selfcheck.ENV_VAR, '0')
    args = scan_args()
    with warnings.catch_warnings():
        warnings.simplefilter('error', KernelSelfCheckWarning)
        y = selective_scan(**args)
    # unchecked: the (wrong) triton kernel ran
    assert chosen == ['triton'] and selfcheck.results() == []
    torch.testing.assert_close(y, selective_scan(**args, backend='torch') + 0.5,
                               rtol=1e-4, atol=1e-4)


def test_each_configuration_is_checked_once(simulated_gpu, monkeypatch):
    calls = []
    real_check = selfcheck.check
    monkeypatch.setattr(selfcheck, 'check', lambda *a: calls.append(a) or real_check(*a))
    selective_scan(**scan_args())
    selective_scan(**scan_args())                                   # same: no new check
    selective_scan(**scan_args(dtype=torch.bfloat16))               # another dtype
    selective_scan(**scan_args(n_state=2))                          # another state size
    assert [(c[2]['u'], c[3]) for c in calls] == [
        (torch.float32, 4), (torch.bfloat16, 4), (torch.float32, 2)]
    bf16 = [r for r in selfcheck.results() if r.dtypes['u'] == 'bfloat16']
    assert bf16[0].ok and bf16[0].tolerance == selfcheck.TOLERANCE[torch.bfloat16]
    assert bf16[0].dtypes['A'] == 'float32'                  # each input in the call's dtype


def test_global_random_state_is_untouched(simulated_gpu):
    args = scan_args()
    state = torch.get_rng_state()
    selective_scan(**args)
    assert selfcheck.results()                             # the check did run
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.skipif(DEVICE == 'cuda', reason='triton runs CPU tensors only under the interpreter')
def test_cpu_calls_are_not_checked(chosen):
    """The real predicate: compiled kernels run on CUDA only; the interpreter is not checked."""
    selfcheck.reset()
    selective_scan(**{k: (v.cpu() if torch.is_tensor(v) else v) for k, v in scan_args().items()},
                   backend='triton')
    assert chosen == ['triton'] and selfcheck.results() == []

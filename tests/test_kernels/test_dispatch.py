"""Backend selection, the env override, lazy triton import and the input checks' messages."""
import importlib.util
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

import mlla_kernels
from mlla_kernels import (available_backends, bidirectional_selective_scan,
                          cross_scan_selective_scan, selective_scan)

from mlla_kernels.dispatch import resolve_backend

from kernel_checks import DEVICE, NUMBA_OK, TRITON_OK


def scan_inputs(batch=1, dim=4, length=5, n_state=2, dtype=torch.float32, device='cpu'):
    return (torch.randn(batch, dim, length, dtype=dtype, device=device),
            torch.randn(batch, dim, length, dtype=dtype, device=device),
            -torch.rand(dim, n_state, dtype=dtype, device=device),
            torch.randn(batch, n_state, length, dtype=dtype, device=device),
            torch.randn(batch, n_state, length, dtype=dtype, device=device))


@pytest.fixture
def chosen(monkeypatch):
    """Records which backend each call resolves to (and still runs the naive one)."""
    calls = []
    real = mlla_kernels.get_impl

    def spy(op, backend):
        calls.append(backend)
        return real(op, 'naive')

    monkeypatch.setattr(mlla_kernels, 'get_impl', spy)
    return calls


def test_available_backends():
    assert available_backends('cpu')[:2] == ['naive', 'torch']
    assert ('numba' in available_backends('cpu')) == NUMBA_OK
    # triton runs CPU tensors only under its interpreter (tests without a GPU), else CUDA ones
    assert ('triton' in available_backends(DEVICE)) == TRITON_OK
    assert set(available_backends()) <= {'naive', 'torch', 'numba', 'triton'}


def test_auto_on_cpu_is_numba_but_torch_for_float64_and_env_overrides(chosen, monkeypatch):
    monkeypatch.delenv(mlla_kernels.ENV_VAR, raising=False)
    selective_scan(*scan_inputs())
    selective_scan(*scan_inputs(dtype=torch.float64))
    selective_scan(*scan_inputs(dtype=torch.bfloat16))
    monkeypatch.setenv(mlla_kernels.ENV_VAR, 'naive')
    selective_scan(*scan_inputs())
    selective_scan(*scan_inputs(), backend='torch')       # an explicit backend beats the env
    fast = 'numba' if NUMBA_OK else 'torch'
    assert chosen == [fast, 'torch', fast, 'naive', 'torch']


def test_numba_is_a_cpu_backend():
    with pytest.raises(RuntimeError, match="backend='numba' runs on CPU tensors; got device cuda"):
        resolve_backend('numba', torch.device('cuda'))
    assert 'numba' not in available_backends('cuda')


@pytest.mark.e2e   # a fresh Python process: not in make test-fast
def test_import_and_run_without_numba():
    """With numba unimportable, import works, 'auto' runs torch, and asking for numba says why."""
    code = (
        "import sys; sys.modules['numba'] = None\n"
        "import torch, mlla_kernels as mk\n"
        "assert mk.available_backends('cpu') == ['naive', 'torch'], mk.available_backends('cpu')\n"
        "x = torch.randn(1, 2, 3)\n"
        "y = mk.selective_scan(x, x, -torch.ones(2, 1), torch.ones(1, 1, 3), torch.ones(1, 1, 3))\n"
        "assert y.shape == (1, 2, 3)\n"
        "assert not any(m.endswith('numba_utils') for m in sys.modules), 'numba kernels imported'\n"
        "try:\n"
        "    mk.selective_scan(x, x, -torch.ones(2, 1), torch.ones(1, 1, 3), torch.ones(1, 1, 3),\n"
        "                      backend='numba')\n"
        "except RuntimeError as err:\n"
        "    assert 'unavailable' in str(err) and 'numba' in str(err), err\n"
        "else:\n"
        "    raise AssertionError('no error')\n")
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          env={'PATH': '/usr/bin:/bin'}, timeout=120)
    assert done.returncode == 0, done.stderr


def test_bad_backend_names(monkeypatch):
    with pytest.raises(ValueError, match="backend must be one of 'auto', 'naive', 'torch'"):
        selective_scan(*scan_inputs(), backend='cuda')
    monkeypatch.setenv(mlla_kernels.ENV_VAR, 'fast')
    with pytest.raises(ValueError, match='MLLA_KERNELS_BACKEND must be one of'):
        selective_scan(*scan_inputs())


def test_triton_on_cpu_needs_the_interpreter(monkeypatch):
    monkeypatch.setenv('TRITON_INTERPRET', '0')
    with pytest.raises(RuntimeError, match='TRITON_INTERPRET=1'):
        selective_scan(*scan_inputs(), backend='triton')
    assert 'triton' not in available_backends('cpu')


@pytest.mark.skipif(not TRITON_OK, reason='triton backend not runnable here')
def test_triton_rejects_float64_with_the_allowed_list():
    with pytest.raises(TypeError, match="backend 'triton' supports float16, bfloat16, float32"):
        selective_scan(*scan_inputs(dtype=torch.float64, device=DEVICE), backend='triton')


def test_entry_points_stay_functions_after_lazy_imports():
    """The subpackages share the entry points' names; importing a backend must not rebind them."""
    for backend in ('naive', 'torch'):
        selective_scan(*scan_inputs(), backend=backend)
    assert callable(mlla_kernels.selective_scan)
    assert callable(mlla_kernels.cross_scan_selective_scan)
    assert callable(mlla_kernels.bidirectional_selective_scan)


@pytest.mark.e2e   # a fresh Python process: not in make test-fast
def test_import_and_run_without_triton():
    """With triton unimportable, import works, 'auto' runs, and asking for triton says why."""
    code = (
        "import sys; sys.modules['triton'] = None\n"
        "import torch, mlla_kernels as mk\n"
        "assert 'triton' not in mk.available_backends('cpu'), mk.available_backends('cpu')\n"
        "x = torch.randn(1, 2, 3)\n"
        "y = mk.selective_scan(x, x, -torch.ones(2, 1), torch.ones(1, 1, 3), torch.ones(1, 1, 3))\n"
        "assert y.shape == (1, 2, 3)\n"
        "assert not any(m.endswith('.triton') for m in sys.modules if m.startswith('mlla'))\n"
        "try:\n"
        "    mk.selective_scan(x, x, -torch.ones(2, 1), torch.ones(1, 1, 3), torch.ones(1, 1, 3),\n"
        "                      backend='triton')\n"
        "except RuntimeError as err:\n"
        "    assert 'unavailable' in str(err), err\n"
        "else:\n"
        "    raise AssertionError('no error')\n")
    env = {'TRITON_INTERPRET': '1', 'PATH': '/usr/bin:/bin',
           **{k: os.environ[k] for k in ('PYTHONPATH',) if k in os.environ}}
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr


def test_repository_folder_is_not_a_second_package_named_kernels(monkeypatch):
    """With the repository root on sys.path (every tool puts it there), the kernel package
    must not be found as a top-level 'kernels' too (its folder was once named so):
    transformers imports that name, probing for Hugging Face's package, when mmengine loads
    it, and a second copy of ours would register the operators twice."""
    root = osp.dirname(osp.dirname(osp.abspath(mlla_kernels.__file__)))
    monkeypatch.syspath_prepend(root)
    spec = importlib.util.find_spec('kernels')
    assert spec is None or not osp.abspath(spec.origin).startswith(root + os.sep), spec


# ------------------------------------------------------------------ input checks
@pytest.mark.parametrize('index,bad,message', [
    (0, torch.randn(1, 4), r'u must have shape \(batch, D, L\); got \(1, 4\)'),
    (1, torch.randn(1, 4, 6), r'delta must have shape \(batch, D, L\) with L=5'),
    (2, torch.randn(3, 2), r'A must have shape \(D, N\) with D=4'),
    (3, torch.randn(2, 2, 5), r'B must have shape \(batch, N, L\) with batch=1'),
    (4, torch.randn(1, 3, 5), r'C must have shape \(batch, N, L\) with N=2'),
])
def test_selective_scan_shape_errors(index, bad, message):
    args = list(scan_inputs())
    args[index] = bad
    with pytest.raises(ValueError, match=message):
        selective_scan(*args)


def test_selective_scan_optional_and_group_errors():
    u, delta, A, B, C = scan_inputs()
    with pytest.raises(ValueError, match=r'D must have shape \(D,\) with D=4'):
        selective_scan(u, delta, A, B, C, D=torch.randn(3))
    with pytest.raises(ValueError, match=r'z must have shape \(batch, D, L\)'):
        selective_scan(u, delta, A, B, C, z=torch.randn(1, 4, 4))
    with pytest.raises(ValueError, match=r'delta_bias must have shape \(D,\)'):
        selective_scan(u, delta, A, B, C, delta_bias=torch.randn(4, 1))
    grouped = torch.randn(1, 3, 2, 5)
    with pytest.raises(ValueError, match='multiple of the group count G=3'):
        selective_scan(u, delta, A, grouped, grouped)
    with pytest.raises(ValueError, match=r'C must have shape \(batch, G, N, L\)'):
        selective_scan(u, delta, A, torch.randn(1, 2, 2, 5), C)
    with pytest.raises(ValueError, match='L must be at least 1'):
        selective_scan(u[..., :0], delta[..., :0], A, B[..., :0], C[..., :0])


def test_dtype_and_device_errors():
    u, delta, A, B, C = scan_inputs()
    with pytest.raises(TypeError,
                       match="u has dtype int64; backend '(numba|torch)' supports float16"):
        selective_scan(u.long(), delta, A, B, C)
    with pytest.raises(ValueError, match='one device; u is on cpu but B is on meta'):
        selective_scan(u, delta, A, B.to('meta'), C)
    with pytest.raises(TypeError, match='A must be a torch.Tensor'):
        selective_scan(u, delta, [[1.0]], B, C)


def test_cross_scan_errors():
    u = torch.randn(1, 3, 4, 5)
    delta = torch.randn(1, 4, 3, 4, 5)
    A = -torch.rand(12, 1)
    B = torch.randn(1, 4, 1, 4, 5)
    cross_scan_selective_scan(u, delta, A, B, B)  # valid
    with pytest.raises(ValueError, match='directions must be 1, 2 or 4; got 3'):
        cross_scan_selective_scan(u, delta, A, B, B, directions=3)
    with pytest.raises(ValueError, match=r'delta must have shape \(batch, K, Di, H, W\) with K=2'):
        cross_scan_selective_scan(u, delta, A, B, B, directions=2)
    with pytest.raises(ValueError, match=r'A must have shape \(K\*Di, N\) with K\*Di=12'):
        cross_scan_selective_scan(u, delta, A[:3], B, B)
    with pytest.raises(ValueError, match=r'B must have shape \(batch, K, N, H, W\) with H=4'):
        cross_scan_selective_scan(u, delta, A, B.transpose(-1, -2), B)
    with pytest.raises(ValueError, match=r'D must have shape \(K\*Di,\)'):
        cross_scan_selective_scan(u, delta, A, B, B, D=torch.randn(3))


def test_bidirectional_errors():
    u = torch.randn(1, 2, 3, 6)
    A = -torch.rand(2, 3, 4)
    B = torch.randn(1, 2, 4, 6)
    bidirectional_selective_scan(u, u, A, B, B)  # valid
    with pytest.raises(ValueError,
                       match=r'u must have shape \(batch, 2, Di, L\); got \(1, 3, 3, 6\)'):
        bidirectional_selective_scan(torch.randn(1, 3, 3, 6), u, A, B, B)
    with pytest.raises(ValueError, match=r'A must have shape \(2, Di, N\) with Di=3'):
        bidirectional_selective_scan(u, u, A[:, :2], B, B)
    with pytest.raises(ValueError, match=r'z must have shape \(batch, Di, L\)'):
        bidirectional_selective_scan(u, u, A, B, B, z=torch.randn(1, 2, 3, 6))
    with pytest.raises(ValueError, match=r'D must have shape \(2, Di\)'):
        bidirectional_selective_scan(u, u, A, B, B, D=torch.randn(6))

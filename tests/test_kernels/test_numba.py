"""The fused CPU backend (numba) beyond the shared backend tests (which run it on every case of
test_selective_scan / test_cross_scan / test_bidirectional): chunk and channel-block borders,
layouts, thread-count independence, gradcheck, its math functions, the disk cache."""
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from mlla_kernels import bidirectional_selective_scan, cross_scan_selective_scan, selective_scan
from mlla_kernels.bidirectional.naive import bidirectional_selective_scan_naive
from mlla_kernels.cross_scan.naive import cross_scan_selective_scan_naive
from mlla_kernels.selective_scan.naive import selective_scan_naive

from kernel_checks import (NUMBA_OK, NUMBA_WHY, assert_close_rel, check_against_naive, leaves,
                           neg_A, raw_delta)

pytestmark = pytest.mark.skipif(not NUMBA_OK, reason=NUMBA_WHY)

NAMES = ('u', 'delta', 'A', 'B', 'C', 'D', 'z', 'delta_bias')
F64 = dict(dtype=torch.float64)


def scan_call(fn, **fixed):
    def run(u, delta, A, B, C, D, z, delta_bias, **kw):
        return fn(u, delta, A, B, C, D=D, z=z, delta_bias=delta_bias, **fixed, **kw)
    return run


def selective_inputs(batch, dim, length, n_state, groups):
    bc = (batch, groups, n_state, length)
    return [torch.randn(batch, dim, length, **F64), raw_delta(batch, dim, length, softplus=True),
            neg_A(dim, n_state), torch.randn(*bc, **F64), torch.randn(*bc, **F64),
            torch.randn(dim, **F64), torch.randn(batch, dim, length, **F64),
            torch.randn(dim, **F64) * 0.5]


@pytest.mark.parametrize('dtype,tol', [(torch.float64, 1e-10), (torch.float32, 2e-6)])
def test_many_chunks_channel_blocks_and_last_state(dtype, tol):
    """L = 70 (chunks of 32: two whole, one partial), 2 groups of 35 channels (a block of 32
    and one of 3); the final state is an output too, so its gradient enters the backward."""
    tensors = selective_inputs(2, 70, 70, 4, 2)
    check_against_naive(scan_call(selective_scan, backend='numba', return_last_state=True),
                        scan_call(selective_scan_naive, return_last_state=True), tensors, NAMES,
                        dict(delta_softplus=True), dtype, tol, n_outputs=2)


def test_cross_scan_reads_channels_last_maps_and_writes_like_u():
    """u/delta/B/C as channels-innermost views (how VMamba runs): same numbers and gradients
    as naive, and y comes back channels-last as u was, without a copy of any input."""
    batch, dim, height, width, n_state = 2, 40, 5, 13, 2
    u = torch.randn(batch, height, width, dim, **F64)
    delta = raw_delta(batch, 4, height, width, dim, softplus=True)
    B = torch.randn(batch, height * width, 4, n_state, **F64)
    C = torch.randn(batch, height * width, 4, n_state, **F64)
    A, D, bias = neg_A(4 * dim, n_state), torch.randn(4 * dim, **F64), torch.randn(4 * dim, **F64)

    def channels_last(ts):
        u_, delta_, A_, B_, C_, D_, _, bias_ = ts
        maps = [u_.permute(0, 3, 1, 2), delta_.permute(0, 1, 4, 2, 3),
                B_.permute(0, 2, 3, 1).unflatten(3, (height, width)),
                C_.permute(0, 2, 3, 1).unflatten(3, (height, width))]
        assert all(not m.is_contiguous() for m in maps)
        return maps[:2] + [A_] + maps[2:] + [D_, None, bias_]

    def cross(u_, delta_, A_, B_, C_, D_, z_, bias_, **kw):
        return cross_scan_selective_scan(u_, delta_, A_, B_, C_, D=D_, delta_bias=bias_,
                                         **kw)

    def cross_naive(u_, delta_, A_, B_, C_, D_, z_, bias_, backend):
        return cross_scan_selective_scan_naive(*channels_last([u_, delta_, A_, B_, C_, D_,
                                                               z_, bias_])[:5],
                                               D=D_, delta_bias=bias_)

    tensors = [u, delta, A, B, C, D, None, bias]
    check_against_naive(cross, cross_naive, tensors, NAMES, dict(backend='numba'),
                        torch.float32, 2e-6, prepare=channels_last)
    y = cross_scan_selective_scan(*channels_last([t.float() if t is not None else None
                                                  for t in tensors])[:5], backend='numba')
    assert y.stride(1) == 1 and y.is_contiguous(memory_format=torch.channels_last)


def test_bidirectional_many_chunks_blocks_and_token_layout():
    """Vim's layout: (B, 2, L, Di) memory viewed as (B, 2, Di, L); L = 67, Di = 36."""
    batch, dim, length, n_state = 1, 36, 67, 3
    tensors = [torch.randn(batch, 2, length, dim, **F64),
               raw_delta(batch, 2, length, dim, softplus=True), neg_A(2, dim, n_state),
               torch.randn(batch, 2, length, n_state, **F64),
               torch.randn(batch, 2, length, n_state, **F64), torch.randn(2, dim, **F64),
               torch.randn(batch, length, dim, **F64), torch.randn(2, dim, **F64)]

    def tokens(ts):
        u, delta, A, B, C, D, z, bias = ts
        return [u.transpose(2, 3), delta.transpose(2, 3), A, B.transpose(2, 3),
                C.transpose(2, 3), D, z.transpose(1, 2), bias]

    def naive(*ts, **kw):
        return scan_call(bidirectional_selective_scan_naive)(*tokens(list(ts)), **kw)

    check_against_naive(scan_call(bidirectional_selective_scan, backend='numba'), naive,
                        tensors, NAMES, dict(delta_softplus=True), torch.float32, 2e-6,
                        prepare=tokens)


def _run_all(tensors, threads):
    torch.set_num_threads(threads)
    ours = leaves(tensors, torch.float32)
    y = selective_scan(*ours[:5], D=ours[5], z=ours[6], delta_bias=ours[7], delta_softplus=True,
                       backend='numba')
    (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
    return [y.detach()] + [t.grad for t in ours]


def test_same_result_with_one_and_all_threads():
    """Each channel's arithmetic is fixed: y and the per-channel gradients are bit-identical;
    dB and dC (sums over channel blocks, whose size adapts to the threads) within 1e-6."""
    tensors = selective_inputs(1, 64, 45, 4, 1)
    before = torch.get_num_threads()
    try:
        one = _run_all(tensors, 1)
        many = _run_all(tensors, max(2, before))
    finally:
        torch.set_num_threads(before)
    for name, a, b in zip(('y',) + NAMES, one, many):
        if name in ('B', 'C'):
            assert_close_rel(b, a, 1e-6, f'gradient of {name}')
        else:
            assert torch.equal(a, b), name


def test_gradcheck_float64():
    """float64 runs the same kernels with libm exp/log1p: finite differences are meaningful."""
    torch.manual_seed(3)
    u, delta, A, B, C, D, z, bias = leaves(selective_inputs(1, 3, 37, 2, 1))
    assert torch.autograd.gradcheck(
        lambda *a: selective_scan(*a[:5], D=a[5], z=a[6], delta_bias=a[7], delta_softplus=True,
                                  backend='numba'),
        (u, delta, A, B, C, D, z, bias), eps=1e-6, atol=1e-7, rtol=1e-6)
    height, width, dim = 3, 4, 2
    cu = torch.randn(1, dim, height, width, **F64, requires_grad=True)
    cd = raw_delta(1, 4, dim, height, width, softplus=True).requires_grad_()
    cA = neg_A(4 * dim, 1).requires_grad_()
    cB = torch.randn(1, 4, 1, height, width, **F64, requires_grad=True)
    cC = torch.randn(1, 4, 1, height, width, **F64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda *a: cross_scan_selective_scan(*a, backend='numba'), (cu, cd, cA, cB, cC),
        eps=1e-6, atol=1e-7, rtol=1e-6)
    bu = torch.randn(1, 2, dim, 5, **F64, requires_grad=True)
    bd = raw_delta(1, 2, dim, 5, softplus=True).requires_grad_()
    bA = neg_A(2, dim, 2).requires_grad_()
    bB = torch.randn(1, 2, 2, 5, **F64, requires_grad=True)
    bz = torch.randn(1, dim, 5, **F64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda *a: bidirectional_selective_scan(*a[:4], a[3], z=a[4], backend='numba'),
        (bu, bd, bA, bB, bz), eps=1e-6, atol=1e-7, rtol=1e-6)


def test_strong_decay_is_finite():
    """exp(delta A) = e^-200 per step underflows to exactly 0; nothing becomes inf/nan."""
    u = torch.randn(1, 2, 40)
    delta = torch.full((1, 2, 40), 20.0)
    A = torch.full((2, 4), -10.0)
    B, C = torch.randn(1, 4, 40), torch.randn(1, 4, 40)
    ours = [t.clone().requires_grad_() for t in (u, delta, A, B, C)]
    y = selective_scan(*ours, backend='numba')
    assert torch.isfinite(y).all()
    assert_close_rel(y, selective_scan_naive(*[t.double() for t in (u, delta, A, B, C)]), 1e-6,
                     'output')
    y.square().sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in ours)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_half_inputs_compute_in_float32(dtype):
    tensors = [t.to(dtype) for t in selective_inputs(1, 8, 40, 4, 1)]
    ours = leaves(tensors)
    y = selective_scan(*ours[:5], D=ours[5], z=ours[6], delta_bias=ours[7], delta_softplus=True,
                       backend='numba')
    ref = selective_scan_naive(*[t.double() for t in tensors[:5]], D=tensors[5].double(),
                               z=tensors[6].double(), delta_bias=tensors[7].double(),
                               delta_softplus=True)
    assert y.dtype == dtype
    assert_close_rel(y, ref, 1e-2, f'{dtype} output')
    y.float().sum().backward()
    assert all(t.grad.dtype == dtype and torch.isfinite(t.grad).all() for t in ours)


def test_math_functions_are_accurate_to_fp32_rounding():
    """The vectorizable exp/exp2/log1p/softplus/sigmoid of the float32 kernels."""
    from numba import njit

    from mlla_kernels import numba_utils as nu

    @njit
    def apply(fn_id, x):
        out = np.empty_like(x)
        for i in range(x.size):
            v = x[i]
            if fn_id == 0:
                out[i] = nu.exp(v)
            elif fn_id == 1:
                out[i] = nu.exp2(v)
            elif fn_id == 2:
                out[i] = nu.log1p_unit(v)
            elif fn_id == 3:
                out[i] = nu._softplus(v)
            else:
                out[i] = nu._sigmoid(v)
        return out

    x = np.linspace(-87, 20, 200001).astype(np.float32)
    x64 = x.astype(np.float64)
    unit = np.linspace(0, 1, 100001).astype(np.float32)
    cases = [(0, x, np.exp(x64)), (1, x, np.exp2(x64)),
             (2, unit, np.log1p(unit.astype(np.float64))),
             (3, x, np.logaddexp(0, x64)), (4, x, 1 / (1 + np.exp(-x64)))]
    for fn_id, arg, ref in cases:
        got = apply(fn_id, arg).astype(np.float64)
        keep = ref > 1e-30
        rel = np.abs(got[keep] - ref[keep]) / ref[keep]
        # exp2's argument is exact here; exp's carries the fp32 rounding of x itself (~|x| ulp)
        assert rel.max() < 4e-7, (fn_id, rel.max())
    assert apply(1, np.array([-130.0, -200.0], np.float32)).max() == 0   # underflow to 0


@pytest.mark.e2e   # a fresh Python process: not in make test-fast
def test_kernels_fall_back_to_memory_when_no_cache_location():
    """Where no cache location is writable numba raises at decoration time; the kernels then
    compile in memory (once per process) with one warning instead of failing to import."""
    code = textwrap.dedent('''
        import warnings
        import numpy as np
        from numba.core import caching
        def unwritable(self):
            raise PermissionError('read-only')
        caching._CacheLocator.ensure_cache_path = unwritable
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            from mlla_kernels.routed_scan import numba_math
        assert sum('numba cannot cache' in str(w.message) for w in caught) == 1, caught
        assert numba_math._exp_f32(np.float32(0.0)) == 1.0
    ''')
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def _copy_of_the_package(folder):
    """The kernels package as another clone has it: ``folder/mlla_kernels``, no caches."""
    import mlla_kernels
    shutil.copytree(os.path.dirname(mlla_kernels.__file__), folder / 'mlla_kernels',
                    ignore=shutil.ignore_patterns('__pycache__'))
    return folder


def test_engine_hash_follows_the_content_of_every_numba_source(tmp_path):
    """Same sources in another folder: same cache folder; an edit of the shared math (which
    numba's own per-file freshness check would miss in its callers): a new one."""
    from mlla_kernels.numba_cache import engine_hash
    first = _copy_of_the_package(tmp_path / 'a') / 'mlla_kernels'
    second = _copy_of_the_package(tmp_path / 'b') / 'mlla_kernels'
    assert engine_hash(str(first)) == engine_hash(str(second)) == engine_hash()
    with open(second / 'routed_scan' / 'numba_math.py', 'a') as f:
        f.write('# edited\n')
    assert engine_hash(str(second)) != engine_hash(str(first))


def test_kernels_of_other_packages_cache_by_their_content():
    """A module outside mlla_kernels compiled with the engine's jit (mlla_mm's DCNv4 kernels)
    caches beside the engine's kernels, in a folder named by the module and its content."""
    import inspect

    from mlla_kernels.numba_cache import MachineCacheLocator, _file_hash, engine_cache_dir
    from mlla_mm.models.layers import dcnv4_numba
    fn = dcnv4_numba._forward_kernel.py_func
    locator = MachineCacheLocator(fn, inspect.getfile(fn))
    assert locator.get_cache_path() == os.path.join(
        engine_cache_dir(), 'mlla_mm.models.layers.dcnv4_numba-'
        + _file_hash(os.path.realpath(dcnv4_numba.__file__)))
    assert dcnv4_numba._forward_kernel._cache.cache_path == locator.get_cache_path()


@pytest.mark.e2e   # fresh Python processes: not in make test-fast
def test_a_second_clone_loads_the_kernels_compiled_by_the_first(tmp_path):
    """The disk cache is per machine, keyed by content: a copy of the package in another folder
    loads what the first copy compiled, and neither writes next to its sources."""
    code = textwrap.dedent('''
        import numpy as np
        from mlla_kernels import numba_cache
        from mlla_kernels.routed_scan import numba_math
        assert numba_math._exp_f32(np.float32(0.0)) == 1.0
        print(numba_cache.engine_cache_dir(), sum(numba_math._exp_f32.stats.cache_hits.values()))
    ''')
    cache = tmp_path / 'cache'
    runs = []
    for clone in ('a', 'b'):
        folder = _copy_of_the_package(tmp_path / clone)
        env = dict(os.environ, PYTHONPATH=str(folder), NUMBA_CACHE_DIR=str(cache))
        env.pop('MLLA_KERNELS_NUMBA_CACHE', None)
        done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                              timeout=600, env=env, cwd=str(tmp_path))
        assert done.returncode == 0, done.stderr[-3000:]
        runs.append(done.stdout.split())
        assert not list((folder / 'mlla_kernels').rglob('*.nbi'))
    (folder_a, hits_a), (folder_b, hits_b) = runs
    assert folder_a == folder_b and folder_a.startswith(str(cache / 'mlla_kernels'))
    assert (int(hits_a), int(hits_b)) == (0, 1)
    assert list((cache / 'mlla_kernels').rglob('numba_math._exp_f32-*.nbi'))


@pytest.mark.e2e   # a fresh Python process: not in make test-fast
def test_a_second_process_loads_the_compiled_kernels_from_disk():
    """The first call compiles once; a later process reuses the on-disk cache."""
    from mlla_kernels import numba_utils as nu
    nu.warm_up()   # compiled (or loaded) here
    code = ('from mlla_kernels import numba_utils as nu\n'
            'nu.warm_up()\n'
            'print(sum(nu._forward_programs.stats.cache_hits.values()),'
            ' sum(nu._backward_programs.stats.cache_hits.values()))')
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [int(h) >= 1 for h in done.stdout.split()] == [True, True], done.stdout

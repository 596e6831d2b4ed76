"""The analysis tools: resolution-scaling benchmark and FLOP counting (tiny inputs)."""
import json
import math
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mlla_mm.analysis import benchmark as bm
from mlla_mm.analysis.flops import (complexity_of_backbone, count_complexity,
                                    scans_as_probes, selective_scan_flops)


class ToyConvNet(nn.Module):
    """conv 3→8 (3×3, stride 2) then a per-token linear 8→4: every FLOP is known."""

    def __init__(self, fail_above: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.fc = nn.Linear(8, 4)
        self.fail_above = fail_above

    def forward(self, x):
        if self.fail_above and x.shape[-1] > self.fail_above:
            raise RuntimeError('toy failure above the size limit')
        y = self.conv(x)
        return (self.fc(y.flatten(2).transpose(1, 2)), )


TOY = dict(name='toy', cfg=dict(type=f'{__name__}:ToyConvNet'), scope=None)


# ----------------------------------------------------------------------------- exponent fit
@pytest.mark.parametrize('power', [1.0, 2.0, 1.5])
def test_fit_exponent_recovers_power_law(power):
    pixels = [224**2, 512**2, 1024**2, 2048**2]
    assert bm.fit_exponent(pixels, [3e-4 * p**power for p in pixels]) == pytest.approx(power)


def test_fit_exponent_least_squares_and_degenerate_inputs():
    # log-log points (0,0), (1,1), (2,3): least-squares slope 1.5 in log space
    pixels = [1, math.e, math.e**2]
    assert bm.fit_exponent(pixels, [1, math.e, math.e**3]) == pytest.approx(1.5)
    assert bm.fit_exponent([100], [1.0]) is None
    assert bm.fit_exponent([100, 400], [1.0, None]) is None


# ----------------------------------------------------------------------------- benchmark
def test_benchmark_runs_and_table_has_every_row(tmp_path):
    specs = [TOY, dict(name='toy-b', cfg=dict(type=f'{__name__}:ToyConvNet'))]
    results = bm.run_benchmark(specs, sizes=[64, 32], batches=[1], warmup=0, repeat=1,
                               isolate=False, log=lambda s: None)
    assert [(r['name'], r['size']) for r in results] == [
        ('toy', 32), ('toy', 64), ('toy-b', 32), ('toy-b', 64)]
    for r in results:
        assert r['status'] == 'ok' and len(r['times_ms']) == 1 and r['median_ms'] > 0
        assert r['images_per_s'] == pytest.approx(1e3 / r['median_ms'])
        assert r['params'] == 3 * 8 * 9 + 8 + 8 * 4 + 4
    summary = bm.summarize(results)
    assert [s['name'] for s in summary] == ['toy', 'toy-b']
    assert all(s['time_exponent'] is not None for s in summary)
    info = bm.machine_info('cpu')
    paths = bm.write_outputs(results, summary, info, str(tmp_path))
    table = open(paths['md']).read()
    for r in results:
        assert f"| {r['name']} | {r['size']} | 1 |" in table
    assert '| toy | 1 |' in table and 'time exponent' in table and info['label'] in table
    data = json.load(open(paths['json']))
    assert len(data['results']) == 4 and data['machine']['torch'] == torch.__version__
    assert osp.getsize(paths['png']) > 1000
    # runs split by size merge back into one table
    part = bm.write_outputs(results[:1], summary, info, str(tmp_path / 'part'), with_plot=False)
    merged, merged_info, train = bm.merge_results([part['json'], paths['json']])
    assert [(r['name'], r['size']) for r in merged] == [(r['name'], r['size']) for r in results]
    assert merged_info['label'] == info['label'] and train is False


def test_benchmark_failure_skips_larger_sizes():
    spec = dict(name='fragile', cfg=dict(type=f'{__name__}:ToyConvNet', fail_above=40))
    results = bm.run_benchmark([spec], sizes=[32, 48, 64], warmup=0, repeat=1, isolate=False,
                               log=lambda s: None)
    assert [r['status'] for r in results] == ['ok', 'error', 'skipped']
    assert 'toy failure' in results[1]['error']
    table = bm.markdown_table(results, bm.summarize(results))
    assert '| fragile | 64 | 1 | – |' in table


@pytest.mark.e2e   # a fresh Python process: not in make test-fast
def test_benchmark_isolated_case_measures_memory():
    """One case in a fresh interpreter: the result comes back with a memory figure."""
    results = bm.run_benchmark([TOY], sizes=[64], warmup=0, repeat=2, isolate=True,
                               timeout_per_case=120, log=lambda s: None)
    (res, ) = results
    assert res['status'] == 'ok', res.get('error')
    assert len(res['times_ms']) == 2 and res['mem_mb'] is not None and res['mem_mb'] >= 0
    assert res['mem_method'].startswith('peak RSS delta')


@pytest.mark.e2e   # worker processes: not in make test-fast
def test_side_by_side_times_a_tree_and_this_one_in_workers(tmp_path):
    """--side-by-side: a worker per checkout (here this tree twice, one as the baseline) times
    every case of every round and measures training memory in fresh processes per model (three
    here, alternating: the median is reported, the samples kept)."""
    from mlla_mm.analysis.side_by_side import markdown, run_side_by_side
    root = osp.join(osp.dirname(__file__), '..', '..')
    toy = f'toy={{"type": "{__name__}:ToyConvNet"}}'
    result = run_side_by_side([toy], [32], ('forward', 'train'), rounds=2, memory_sizes=[32],
                              checkouts=[('before', root), ('after', None)], threads=1,
                              timeout=300, log=lambda s: None, memory_repeats=3)
    assert set(result['checkouts']) == {'before', 'after'}
    for checkout in result['checkouts'].values():
        assert {case: len(ms) for case, ms in checkout['times']['toy'].items()} == \
            {'forward@32': 2, 'train@32': 2}
        samples = checkout['memory_samples']['toy']['32']   # three fresh processes, the median
        assert len(samples) == 3 and min(samples) >= 0
        assert checkout['memory']['toy']['32'] == sorted(samples)[1]
    table = markdown(result)
    assert '| toy |' in table and 'memory: median of 3 fresh processes' in table


def test_side_by_side_can_put_every_models_linear_layers_on_onednn():
    """--onednn-linear-all: the peers' plain nn.Linear layers become the package's Linear (the
    GEMM library taken out of the ratios); without it they stay."""
    from mlla_mm.analysis.side_by_side import _build, resolve_spec
    from mlla_mm.models.layers.linear import Linear
    spec = resolve_spec(f'toy={{"type": "{__name__}:ToyConvNet"}}')
    kinds = {type(m) for m in _build(spec).modules()}
    assert nn.Linear in kinds and Linear not in kinds
    kinds = {type(m) for m in _build(spec, convert_linear=True).modules()}
    assert Linear in kinds and nn.Linear not in kinds


def test_benchmark_script_is_the_module_cli(tmp_path, capsys):
    """tools/analysis/benchmark_backbones.py only forwards to mlla_mm.analysis.benchmark.main:
    a measured sweep, then --merge of its JSON, both writing the table."""
    import importlib.util
    script = osp.join(osp.dirname(__file__), '..', '..', 'tools', 'analysis',
                      'benchmark_backbones.py')
    spec = importlib.util.spec_from_file_location('benchmark_backbones', script)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.main is bm.main
    toy = f'toy={{"type": "{__name__}:ToyConvNet"}}'
    bm.main(['--backbones', toy, '--sizes', '32', '--warmup', '0', '--repeat', '1',
             '--no-isolate', '--device', 'cpu', '--out-dir', str(tmp_path), '--stem', 'run'])
    assert '| toy | 32 | 1 |' in capsys.readouterr().out
    bm.main(['--merge', str(tmp_path / 'run.json'), '--out-dir', str(tmp_path / 'merged')])
    assert '| toy | 32 | 1 |' in (tmp_path / 'merged' / 'backbone_scaling.md').read_text()


def test_resolve_spec_errors_and_json():
    assert bm.resolve_spec('MLLA-T')['cfg'] == dict(type='MLLA', arch='tiny')
    spec = bm.resolve_spec('mini={"type": "MLLA", "arch": "tiny"}')
    assert spec == dict(name='mini', cfg=dict(type='MLLA', arch='tiny'), scope=None)
    with pytest.raises(ValueError, match='unknown backbone'):
        bm.resolve_spec('NoSuchNet')
    with pytest.raises(ValueError, match='not JSON'):
        bm.resolve_spec('x={bad')


# ----------------------------------------------------------------------------- FLOPs
def test_flops_of_conv_linear_toy_are_exact():
    res = count_complexity(ToyConvNet(), torch.randn(2, 3, 16, 12))
    tokens = 2 * 8 * 6  # batch × output grid
    assert res['flops'] == tokens * 8 * 3 * 9 + tokens * 8 * 4
    assert res['params'] == 3 * 8 * 9 + 8 + 8 * 4 + 4
    assert res['scans'] == 0


class ScanToy(nn.Module):
    """Calls the three kernel entry points, two ways, with known shapes."""

    def __init__(self, di=6, n=3, k=4):
        super().__init__()
        self.di, self.n, self.k = di, n, k
        self.A = nn.Parameter(-torch.rand(di, n))
        self.A_cross = nn.Parameter(-torch.rand(k * di, n))
        self.A_bi = nn.Parameter(-torch.rand(2, di, n))

    def forward(self, x):  # x: (b, di, h, w)
        import mlla_kernels
        from mlla_kernels import cross_scan_selective_scan
        b, d, h, w = x.shape
        u = x.flatten(2)
        bc = u[:, :self.n]
        y1 = mlla_kernels.selective_scan(u, u, self.A, bc, bc, D=torch.ones(d), z=u)
        route = x[:, None].expand(b, self.k, d, h, w)
        bc_cross = x[:, None, :self.n].expand(b, self.k, self.n, h, w)
        y2 = cross_scan_selective_scan(x, route, self.A_cross, bc_cross, bc_cross,
                                       D=torch.ones(self.k * d), directions=self.k)
        u2 = torch.stack([u, u], 1)
        bc2 = torch.stack([bc, bc], 1)
        y3 = mlla_kernels.bidirectional_selective_scan(u2, u2, self.A_bi, bc2, bc2,
                                                       D=torch.ones(2, d), z=u)
        return y1, y2, y3


def test_scan_probe_counts_the_formula_and_restores_the_kernels():
    import mlla_kernels
    originals = [getattr(mlla_kernels, n) for n in bm_scan_names()]
    b, di, n, h, w = 2, 6, 3, 3, 5
    res = count_complexity(ScanToy(di, n), torch.randn(b, di, h, w))
    L = h * w
    expected = (selective_scan_flops(b, L, di, n, with_D=True, with_z=True) +
                selective_scan_flops(b, L, 4 * di, n, with_D=True, with_z=False) +
                selective_scan_flops(b, L, 2 * di, n, with_D=True, with_z=True))
    assert res['scans'] == 3
    assert res['by_operator'] == {'PythonOp._ScanFlopsProbe': expected}
    assert selective_scan_flops(b, L, di, n) == 9 * b * L * di * n + b * di * L
    assert [getattr(mlla_kernels, n) for n in bm_scan_names()] == originals
    # outputs keep their shapes through the probe (zeros unless compute_scans)
    with scans_as_probes() as stats:
        y1, y2, y3 = ScanToy(di, n)(torch.randn(b, di, h, w))
    assert stats['calls'] == 3 and stats['patched'] >= 3
    assert y1.shape == (b, di, L) and y2.shape == (b, di, h, w) and y3.shape == (b, di, L)


def bm_scan_names():
    from mlla_mm.analysis.flops import SCAN_ENTRY_POINTS
    return SCAN_ENTRY_POINTS


def test_sdpa_counts_qk_and_pv():
    class Attn(nn.Module):
        def forward(self, q, k, v):
            return F.scaled_dot_product_attention(q, k, v)

    q, k, v = torch.randn(2, 3, 10, 4), torch.randn(2, 3, 7, 4), torch.randn(2, 3, 7, 5)
    assert count_complexity(Attn(), (q, k, v))['flops'] == 2 * 3 * 10 * 7 * (4 + 5)


def test_vmamba_tiny_scan_flops_match_formula():
    arch = dict(embed_dims=8, depths=[1, 1, 1, 1], ssm_ratio=1.0, d_state=2)
    res = complexity_of_backbone(dict(type='VMamba', arch=arch), (64, ))
    # 4 routes over Di = C_i channels each; grid 16, 8, 4, 2 at strides 4..32
    expected = sum(selective_scan_flops(1, (16 >> i)**2, 4 * 8 * 2**i, 2) for i in range(4))
    assert res['scans'] == 4
    assert res['by_operator']['PythonOp._ScanFlopsProbe'] == expected


def test_vim_tiny_scan_flops_match_formula():
    cfg = dict(type='Vim', arch=dict(embed_dims=16, depth=2), with_adapter=False,
               out_indices=(0, 1))
    res = complexity_of_backbone(cfg, (64, ))
    # 16 tokens; both directions over Di = 2C = 32 channels, N = 16, D skip and z gate
    assert res['scans'] == 2
    assert res['by_operator']['PythonOp._ScanFlopsProbe'] == 2 * selective_scan_flops(
        1, 16, 2 * 32, 16, with_D=True, with_z=True)


def test_mhs_scan_flops_match_formula():
    """MHS runs its heads as one routed scan: 4h routes over s = C/h channels, N = 16, D."""
    cfg = dict(type='MHSVMamba', arch=dict(embed_dims=8, depths=[1, 1, 1, 1], heads=2))
    res = complexity_of_backbone(cfg, (64, ))
    assert res['scans'] == 4
    expected = sum(selective_scan_flops(1, (16 >> i)**2, 2 * 4 * (8 * 2**i // 2), 16)
                   for i in range(4))
    assert res['by_operator']['PythonOp._ScanFlopsProbe'] == expected
    unet = complexity_of_backbone(dict(type='VMUNet', arch=dict(
        embed_dims=8, depths=[1, 1, 1, 1], decoder_depths=[1, 1, 1, 1], heads=2)), (64, ))
    assert unet['scans'] == 8


def test_mlla_linear_attention_is_counted_and_linear_in_tokens():
    from mlla_mm.models.layers import MLLALinearAttention

    class Wrap(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = MLLALinearAttention(16, 2)

        def forward(self, x):
            side = int(math.isqrt(x.shape[1]))
            return self.attn(x, (side, side))

    c, d = 16, 8
    counts = {}
    for side in (4, 8):
        n = side * side
        res = count_complexity(Wrap(), torch.randn(1, n, c))
        # K^T V and Q (K^T V): n·C·d each; plus the qk projection and the 3×3 LePE
        assert res['by_operator']['matmul'] >= 2 * n * c * d
        assert res['flops'] >= n * c * 2 * c + 9 * n * c + 2 * n * c * d
        counts[n] = res['flops']
    assert counts[64] == 4 * counts[16]


def test_selective_scan_flops_conventions():
    # 'ref' follows selective_scan_ref's einsums: about 3.5·BLDN vs 9·BLDN
    ref = selective_scan_flops(1, 196, 384, 16, convention='ref')
    assert 3.0 < ref / (196 * 384 * 16) < 4.0
    with pytest.raises(ValueError, match='convention'):
        selective_scan_flops(1, 1, 1, 1, convention='nope')

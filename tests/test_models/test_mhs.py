"""MHS-VM: the Multi-Head Scan module, VM-UNet + MHS (VMUNet), the MHS VMamba-style backbone.

``tests/data/mhs_golden.pt`` holds two small official models run through upstream's code
(PixDeep/MHS-VM commit be64b6f, ``models/vmunet/{vmamba,mhsm}.py`` and ``routegen.py``, on
CPU): VSSM with dims 8-16-32-64, encoder depths 2-1-1-1, decoder depths 1-1-1-2, seeded random
weights (N(0,1)/sqrt(fan_in) linear/conv weights, 1+0.2N norm scales, 0.1N biases, A_logs
log(1..16)+0.2N, Ds 1+0.3N, Mamba's init for x_proj/dt_proj; every value rounded to float16,
which the file stores), one 4-head model with t = 0.5 (inputs 64x64 and 64x96) and one 3-head
model with t = 0.0 (64x64; s = 2, so h·s = 6 != 8 channels). Stored: each state dict in the
official ``vmunet.*`` layout minus the aliased duplicates (``official_keys`` lists the full
key set; the duplicates are the same tensors), the inputs and the logits (``final_conv``
output) of upstream's model run in float64, and upstream's own float32 error against them.
What was patched upstream to run it (the generator stays outside the repo): mamba_ssm's
``selective_scan_fn`` replaced by a float64 reference loop of the same math (B/C grouped per
route, delta_bias + softplus, D skip, no z); the ``.to('cuda')`` of the route tables removed;
timm's ``DropPath``/``to_2tuple``/``trunc_normal_`` stubbed; for the float64 run the float32
casts and dtype asserts of ``MambaEngine``/``ScanPattern`` made float64. Route tables come
from upstream's ``routegen.calc_posarrays`` for each input size; the 64x96 tables are stored
to check our route vocabulary against them.

Why float64: Scan Route Attention divides the routes' spread by ``mean(y - min y) + 1e-5``,
which amplifies float32 rounding where the four routes nearly agree; upstream's own float32
output differs from its float64 output by 3e-4..2e-3 (max-relative) on these models. Ours
matches upstream's float64 output to ~1e-11 in float64 (every backend); in float32 it is
3e-4..5e-3 off on the worst pixel (1e-5..7e-5 in norm), the same order as upstream's own
float32 run.
"""
import os

import pytest
import torch
import torch.nn.functional as F

import mlla_mm  # noqa: F401  (registers the models)
from mlla_kernels import route_table
from mlla_mm.models.backbones.mhs_vmamba import MHSVMamba
from mlla_mm.models.backbones.vmunet import (MHSVM_ALIAS_KEYS, VMUNet,
                                             convert_mhsvm_checkpoint)
from mlla_mm.models.layers.mhs import (HEAD_ROUTES, MHS, head_routes, resolve_heads,
                                       scan_route_attention)
from mlla_mm.utils.checkpoint import CheckpointError

GOLDEN = os.path.join(os.path.dirname(__file__), '..', 'data', 'mhs_golden.pt')
TINY = dict(embed_dims=8, depths=[1, 1, 1, 1], decoder_depths=[1, 1, 1, 1], heads=4)


pytestmark = pytest.mark.usefixtures('one_torch_thread')  # tests/conftest.py


@pytest.fixture(scope='module')
def golden():
    return torch.load(GOLDEN, weights_only=True)


def official_state_dict(entry):
    """The official file's dict: every key of ``official_keys``, aliases sharing tensors."""
    sd = {k: v.float() for k, v in entry['state_dict'].items()}
    for key in entry['official_keys']:
        if key not in sd:
            sd[key] = sd[key.replace('x_ssproj_W', 'x_ssproj.weight')
                         .replace('scanning.seq2seq_engine', 'mambaeng')]
    return {k: sd[k] for k in entry['official_keys']}


def golden_model(entry, **kwargs):
    arch = dict(embed_dims=entry['dims'], depths=entry['depths'],
                decoder_depths=entry['decoder_depths'], heads=entry['heads'])
    return VMUNet(arch, sra_threshold=entry['sra_threshold'], **kwargs).eval()


def rel_err(a, b):
    return float((a - b).abs().max() / b.abs().max())


# -- the module -------------------------------------------------------------------------
def test_heads_and_routes():
    assert resolve_heads(3) == ('C', 'X', 'S') and resolve_heads(4) == ('C', 'X', 'S', 'Z')
    assert resolve_heads(['Z', 'C']) == ('Z', 'C')
    assert [str(r) for r in head_routes('X')] == ['zigzag', 'zigzag~', 'zigzag_mirror',
                                                  'zigzag_mirror~']
    for bad in (0, 5, ['C', 'C'], ['Q']):
        with pytest.raises(ValueError, match='heads'):
            resolve_heads(bad)
    with pytest.raises(TypeError, match='heads'):
        resolve_heads('CXS')


def test_routes_match_upstream_tables(golden):
    """Upstream's route tables for a 64x96 input (levels 16x24 ... 2x3), routes C0 C1 X0 X1
    S0 S1 Z0 Z1, equal our vocabulary's."""
    kinds = [kind for head in HEAD_ROUTES for kind in HEAD_ROUTES[head]]
    for level, tables in enumerate(golden['routes_64x96']):
        h, w = 16 >> level, 24 >> level
        order, _ = route_table(kinds, h, w)
        assert torch.equal(order, tables.long()), (h, w)


def upstream_sra(ys, t):
    """Upstream's GFU, as written there (autograd differentiates it)."""
    spread = (ys - ys.min(1, keepdim=True).values).mean(1)
    cv = ys.std(1, unbiased=True) / (spread + 1e-5)
    return ys.sum(1) * torch.relu(cv - t)


def test_scan_route_attention_is_upstream_formula():
    ys = torch.randn(2, 4, 3, 5, 5, dtype=torch.float64)
    for t in (0.0, 0.4, 1.0):
        assert torch.allclose(scan_route_attention(ys, t), upstream_sra(ys, t))
    # with 4 routes cv lies in [2/3, 2]: a threshold below 2/3 never clips
    spread = (ys - ys.min(1, keepdim=True).values).mean(1)
    cv = ys.std(1) / spread
    assert float(cv.min()) >= 2 / 3 - 1e-9 and float(cv.max()) <= 2 + 1e-9


@pytest.mark.parametrize('t', [0.0, 0.7, 1.2])
def test_scan_route_attention_gradient_is_the_formulas(t):
    """The hand-written backward equals autograd through upstream's formula, for routes in the
    layout the scan returns them in (channels innermost) and in a plain one, and where the
    threshold clips part of the elements."""
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(2, 4, 30, 3, dtype=torch.float64, generator=gen)
    strided = base.transpose(2, 3).unflatten(3, (5, 6))          # (2, 4, 3, 5, 6)
    for ys in (strided, strided.contiguous()):
        ys = ys.detach().requires_grad_()
        grad = torch.randn(2, 3, 5, 6, dtype=torch.float64, generator=gen)
        ours = torch.autograd.grad(scan_route_attention(ys, t), ys, grad)[0]
        theirs = torch.autograd.grad(upstream_sra(ys, t), ys, grad)[0]
        torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-12)
    # all routes equal: no spread, cv = 0; the gradient is the plain sum's times relu(-t)
    ys = torch.ones(1, 4, 2, dtype=torch.float64, requires_grad=True)
    (grad_equal, ) = torch.autograd.grad(scan_route_attention(ys, t).sum(), ys)
    assert torch.isfinite(grad_equal).all() and torch.all(grad_equal == max(-t, 0.0))


def test_heads_in_one_scan_equal_one_head_at_a_time():
    """MHS runs its heads as one routed scan of 4h routes (route 4i + k reading subspace
    i); head by head -- each RouteSSM over its own subspace, then Scan Route Attention --
    gives the same."""
    torch.manual_seed(0)
    module = MHS(24, heads=('S', 'C', 'Z'), sra_threshold=0.5, kernel_backend='naive').double()
    x = torch.randn(2, 24, 5, 7, dtype=torch.float64)
    with torch.no_grad():
        subspaces = F.linear(x.permute(0, 2, 3, 1), module.x_ssproj.weight).permute(0, 3, 1, 2)
        outs = [upstream_sra(head.mambaeng(sub, head.routes, 'naive'), 0.5)
                for head, sub in zip(module.scan_heads(), subspaces.split(8, dim=1))]
        y = module.y_proj(module.cat_norm(torch.cat(outs, 1).permute(0, 2, 3, 1)))
        torch.testing.assert_close(module(x), y.permute(0, 3, 1, 2), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize('heads,size', [(4, (1, 1)), (3, (1, 7)), (4, (5, 3)),
                                        (('C', 'Z'), (7, 9))])
def test_mhs_shapes_and_gradients_at_odd_sizes(heads, size):
    torch.manual_seed(0)
    module = MHS(24, heads=heads, kernel_backend='torch')
    x = torch.randn(2, 24, *size, requires_grad=True)
    y = module(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name, p in module.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    # every head's SSM parameters get a gradient
    assert all(getattr(module, f"scanhead_{h}").mambaeng.dt_projs_bias.grad.abs().sum() > 0
               for h in module.heads)


def test_mhs_parameters_and_threshold():
    module = MHS(20, heads=3, sra_threshold=0.5)
    assert module.dim_sub == 6 and module.x_ssproj.weight.shape == (18, 20)
    assert module.y_proj.weight.shape == (20, 18) and module.cat_norm.normalized_shape == (18,)
    ssm = module.scanhead_S.mambaeng
    assert ssm.x_proj_weight.shape == (4, 1 + 32, 6) and ssm.A_logs.shape == (24, 16)
    assert torch.allclose(-torch.exp(ssm.A_logs[0]), -torch.arange(1., 17.))
    assert module.sra_threshold == 0.5
    module.sra_threshold = 0.4   # upstream tests with 0.4 whatever it trained with
    torch.manual_seed(0)
    x = torch.randn(1, 20, 4, 4)
    with torch.no_grad():
        clipped = module(x)
        module.sra_threshold = 2.0     # above cv's range [2/3, 2]: every route weighed 0
        assert not torch.allclose(module(x), clipped)
        assert torch.allclose(module(x), module.y_proj(module.cat_norm.bias.expand(1, 4, 4, 18))
                              .permute(0, 3, 1, 2))
    with pytest.raises(ValueError, match='divisible'):
        MHS(20, heads=3, with_proj=False)
    with pytest.raises(ValueError, match='kernel_backend'):
        MHS(8, kernel_backend='cuda')


def test_mhs_backends_agree():
    """In float64 (float32 rounding is amplified by Scan Route Attention where the routes
    nearly agree, see the module docstring)."""
    torch.manual_seed(0)
    module = MHS(16, heads=4, kernel_backend='naive').double()
    x = torch.randn(1, 16, 6, 5, dtype=torch.float64)
    with torch.no_grad():
        ref = module(x)
        for backend in ('torch', 'numba'):
            module.kernel_backend = backend
            assert rel_err(module(x), ref) < 1e-9, backend


# -- VM-UNet + MHS ----------------------------------------------------------------------
@pytest.mark.parametrize('arch,num_params', [('4h', 17_257_104), ('3h', 17_386_128)])
def test_presets_match_upstream(arch, num_params):
    """Parameter counts of upstream's VMUNet (deduplicated; + 25 for final_conv, the head's)."""
    model = VMUNet(arch)
    assert sum(p.numel() for p in model.parameters()) == num_params
    assert model.embed_dims == [96, 192, 384, 768] and model.out_channels == [24]
    assert model.depths == [2, 2, 2, 2] and model.decoder_depths == [2, 2, 2, 1]


@pytest.mark.parametrize('size', [(64, 64), (37, 50), (5, 3)])
def test_vmunet_any_size_and_gradients(size):
    torch.manual_seed(0)
    model = VMUNet(TINY, out_indices=(0, 1, 2, 3, 4), kernel_backend='torch')
    assert model.out_channels == [64, 32, 16, 8, 2]
    x = torch.randn(2, 3, *size, requires_grad=True)
    outs = model(x)
    h, w = size
    assert [tuple(o.shape[2:]) for o in outs] == [
        (-(-h // s), -(-w // s)) for s in (32, 16, 8, 4, 1)]
    assert [o.shape[1] for o in outs] == model.out_channels
    outs[-1].mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.parameters())


def test_vmunet_pads_to_32_and_crops():
    """An odd size runs on the image zero-padded (right, bottom) to a multiple of 32 and the
    outputs are cropped back: the same as padding by hand and cropping."""
    torch.manual_seed(0)
    model = VMUNet(TINY, kernel_backend='torch').eval()
    x = torch.randn(1, 3, 60, 61)
    with torch.no_grad():
        out = model(x)[0]
        padded = model(F.pad(x, (0, 3, 0, 4)))[0]
    assert out.shape[2:] == (60, 61)
    assert torch.equal(out, padded[:, :, :60, :61])


def test_vmunet_arch_errors_and_options():
    with pytest.raises(ValueError, match=r"unknown arch '5h'.*'3h'.*'4h'"):
        VMUNet('5h')
    with pytest.raises(ValueError, match='double'):
        VMUNet(dict(TINY, embed_dims=[8, 16, 24, 48]))
    with pytest.raises(ValueError, match='out_indices'):
        VMUNet(TINY, out_indices=(5,))
    with pytest.raises(ValueError, match=r'\(N, 3, H, W\)'):
        VMUNet(TINY)(torch.randn(1, 1, 32, 32))
    model = VMUNet(dict(preset='3h', embed_dims=8, depths=[1, 1, 1, 1]), sra_threshold=0.5)
    assert model.decoder_depths == [2, 2, 2, 1] and model.sra_threshold == 0.5
    model.sra_threshold = 0.4
    assert all(m.sra_threshold == 0.4 for m in model.modules() if isinstance(m, MHS))
    frozen = VMUNet(TINY, frozen_stages=2).train()
    assert not frozen.patch_embed.training and not frozen.layers[1].training
    assert frozen.layers[2].training
    assert not any(p.requires_grad for p in frozen.layers[:2].parameters())


def test_vmunet_with_cp_is_exact():
    torch.manual_seed(0)
    model = VMUNet(TINY, kernel_backend='torch', drop_path_rate=0.0).train()
    x = torch.randn(1, 3, 32, 32)
    plain = model(x)[0]
    for m in model.modules():
        if hasattr(m, 'with_cp'):
            m.with_cp = True
    x.requires_grad_()
    assert torch.allclose(model(x)[0], plain)


def test_official_parameter_names(golden):
    keys = set(golden_model(golden['4h']).state_dict())
    official = {k[len('vmunet.'):] for k in golden['4h']['official_keys']
                if not MHSVM_ALIAS_KEYS.search(k)}
    assert keys == official - {'final_conv.weight', 'final_conv.bias'}


# -- golden -----------------------------------------------------------------------------
@pytest.mark.parametrize('name', ['4h', '3h'])
def test_golden_float64(golden, name):
    entry = golden[name]
    backbone, classifier = convert_mhsvm_checkpoint(official_state_dict(entry))
    model = golden_model(entry, kernel_backend='torch').double()
    model.load_state_dict(backbone, strict=True)
    for case in entry['cases']:
        with torch.no_grad():
            feat = model(case['input'].double())[0]
        logits = F.conv2d(feat, classifier['conv_seg.weight'].double(),
                          classifier['conv_seg.bias'].double())
        assert rel_err(logits, case['logits']) < 1e-9


def test_golden_float32(golden):
    entry = golden['4h']
    backbone, classifier = convert_mhsvm_checkpoint(official_state_dict(entry))
    model = golden_model(entry)          # default backend (numba on CPU)
    model.load_state_dict(backbone, strict=True)
    for case in entry['cases']:
        with torch.no_grad():
            feat = model(case['input'].float())[0]
        logits = F.conv2d(feat, classifier['conv_seg.weight'], classifier['conv_seg.bias'])
        # upstream's own float32 run is 7e-4 / 1.9e-3 off (see the module docstring)
        assert case['upstream_fp32_error'] < 2e-3
        assert rel_err(logits, case['logits'].float()) < 1e-2


# -- loading official files -------------------------------------------------------------
def test_loads_official_file_with_and_without_aliases(golden, tmp_path):
    entry = golden['4h']
    full = official_state_dict(entry)
    assert len(full) == len(entry['official_keys']) == 547
    dedup = {k: v for k, v in full.items() if not MHSVM_ALIAS_KEYS.search(k)}
    for i, sd in enumerate((full, dedup)):
        path = str(tmp_path / f'best_{i}.pth')
        torch.save(sd, path)
        model = golden_model(entry, init_cfg=dict(type='Pretrained', checkpoint=path))
        model.init_weights()
        for key, value in model.state_dict().items():
            assert torch.equal(value, full['vmunet.' + key]), key


def test_official_file_errors(golden, tmp_path):
    full = official_state_dict(golden['4h'])
    three = official_state_dict(golden['3h'])
    cases = {
        'missing': ({k: v for k, v in full.items() if 'layers_up.3.blocks.0.ln_1' not in k},
                    golden['4h'], r'2 missing keys.*layers_up\.3\.blocks\.0\.ln_1'),
        'extra': ({**full, 'vmunet.something.weight': torch.zeros(1)}, golden['4h'],
                  r'unexpected keys \[.something\.weight'),
        'four_into_three': (full, golden['3h'], "wrong shape|4-head file"),
        'three_into_four': (three, golden['4h'], "wrong shape|3-head file"),
    }
    for name, (sd, entry, message) in cases.items():
        path = str(tmp_path / f'{name}.pth')
        torch.save(sd, path)
        model = golden_model(entry, init_cfg=dict(type='Pretrained', checkpoint=path))
        with pytest.raises(CheckpointError, match=message):
            model.init_weights()


# -- MHS as the mixer of a VMamba-style backbone ----------------------------------------
def test_mhs_vmamba_backbone():
    torch.manual_seed(0)
    model = MHSVMamba(dict(embed_dims=8, depths=[1, 1, 1, 1], heads=('C', 'S')),
                      out_indices=(1, 3), kernel_backend='torch', drop_path_rate=0.1)
    assert model.out_channels == [16, 64]
    x = torch.randn(2, 3, 45, 61, requires_grad=True)
    outs = model(x)
    assert [tuple(o.shape) for o in outs] == [(2, 16, 6, 8), (2, 64, 2, 2)]
    sum(o.square().mean() for o in outs).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    block = model.layers[2].blocks[0]
    assert block.op.mhs.heads == ('C', 'S') and block.op.mhs.sra_threshold == 0.5
    # VMamba's key names outside the mixer
    keys = set(model.state_dict())
    assert {'patch_embed.0.weight', 'layers.0.downsample.1.weight',
            'layers.3.blocks.0.norm2.weight',
            'layers.3.blocks.0.mlp.fc1.weight', 'outnorm3.weight',
            'layers.0.blocks.0.op.mhs.scanhead_S.mambaeng.A_logs'} <= keys
    with pytest.raises(ValueError, match='frozen_stages'):
        MHSVMamba(dict(embed_dims=8, depths=[1, 1, 1, 1]), frozen_stages=5)


def test_mhs_vmamba_presets():
    model = MHSVMamba('t')
    assert model.depths == [2, 2, 8, 2] and model.out_channels == [96, 192, 384, 768]
    assert model.layers[2].blocks[0].op.mhs.heads == ('C', 'X', 'S', 'Z')
    assert MHSVMamba.arch_zoo['small'] == dict(embed_dims=96, depths=[2, 2, 15, 2])


def test_registered():
    from mmengine.registry import MODELS
    assert isinstance(MODELS.build(dict(type='VMUNet', arch=TINY)), VMUNet)
    assert isinstance(MODELS.build(dict(type='MHSVMamba', arch=dict(embed_dims=8,
                                                                      depths=[1, 1, 1, 1]))),
                      MHSVMamba)

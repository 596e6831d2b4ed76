"""MLLA backbone: presets, sizes, freezing, checkpointing, official numerics, loading."""
import math
import os

import pytest
import torch
import torch.utils.checkpoint
from torch import nn

from mlla_kernels.dispatch import numba_status
from mlla_mm.models.backbones.mlla import MLLA
from mlla_mm.models.layers import MLLALinearAttention, apply_rope_2d, rope_2d_tables
from mlla_mm.utils.checkpoint import CheckpointError, load_pretrained

GOLDEN = os.path.join(os.path.dirname(__file__), '..', 'data', 'mlla_golden.pt')
# Small custom arch for behaviour tests (sizes do not depend on widths).
SMALL = dict(embed_dims=16, depths=[1, 2, 1, 1], num_heads=[1, 2, 2, 4])


pytestmark = pytest.mark.usefixtures('one_torch_thread')  # tests/conftest.py


def _sizes(outs):
    return [tuple(o.shape[-2:]) for o in outs]


# -- presets --------------------------------------------------------------------
# Backbone parameters without the classifier; + head and final norm gives the
# published 24.4M / 43.0M / 96.0M.
PRESETS = [
    ('tiny', 64, [2, 4, 8, 4], 23_880_096, (97, 131)),
    ('s', 64, [3, 6, 21, 6], 42_502_944, (64, 80)),
    ('base', 96, [3, 6, 21, 6], 95_216_304, (64, 80)),
]


@pytest.mark.parametrize('arch,embed,depths,num_params,size', PRESETS)
def test_presets_shapes_and_params(arch, embed, depths, num_params, size):
    model = MLLA(arch=arch).eval()
    assert sum(p.numel() for p in model.parameters()) == num_params
    assert [len(stage.blocks) for stage in model.layers] == depths
    with torch.no_grad():
        outs = model(torch.randn(1, 3, *size))
    assert isinstance(outs, tuple) and len(outs) == 4
    h, w = size
    for i, out in enumerate(outs):
        stride = 2 ** (i + 2)
        assert out.shape == (1, embed * 2 ** i, math.ceil(h / stride), math.ceil(w / stride))
        assert out.is_contiguous() and torch.isfinite(out).all()


def test_arch_aliases_and_overrides():
    assert MLLA.arch_zoo['t'] == MLLA.arch_zoo['tiny']
    assert MLLA.arch_zoo['s'] == MLLA.arch_zoo['small']
    assert MLLA.arch_zoo['b'] == MLLA.arch_zoo['base']
    assert MLLA.arch_zoo['b']['num_heads'] == [3, 6, 12, 24]
    # Upper-case alias plus an override (cheap to build).
    model = MLLA(arch=dict(preset='B', depths=[1, 1, 1, 1]))
    assert model.depths == [1, 1, 1, 1] and model.num_heads == [3, 6, 12, 24]
    assert model.num_features == [96, 192, 384, 768]


def test_arch_errors_are_clear():
    with pytest.raises(ValueError, match=r"unknown arch 'huge'.*'base'.*'small'.*'tiny'"):
        MLLA(arch='huge')
    with pytest.raises(ValueError, match=r"missing \['num_heads'\]"):
        MLLA(arch=dict(embed_dims=16, depths=[1, 1, 1, 1]))
    with pytest.raises(ValueError, match='unknown arch keys'):
        MLLA(arch=dict(SMALL, mlp_ratio=2))
    with pytest.raises(ValueError, match='divisible by the head count'):
        MLLA(arch=dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[3, 2, 2, 4]))
    with pytest.raises(ValueError, match='same length'):
        MLLA(arch=dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 2]))
    with pytest.raises(ValueError, match='out_indices'):
        MLLA(arch=SMALL, out_indices=(4,))
    with pytest.raises(ValueError, match='frozen_stages'):
        MLLA(arch=SMALL, frozen_stages=5)
    with pytest.raises(ValueError, match=r'\(B, 3, H, W\)'):
        MLLA(arch=SMALL)(torch.randn(1, 1, 32, 32))


def test_official_parameter_names():
    keys = set(MLLA(arch=SMALL).state_dict())
    for key in ['patch_embed.conv1.conv.weight', 'patch_embed.conv1.norm.running_var',
                'patch_embed.conv2.1.conv.weight', 'patch_embed.conv3.1.norm.weight',
                'layers.0.blocks.0.cpe1.weight', 'layers.0.blocks.0.attn.qk.weight',
                'layers.1.blocks.1.attn.lepe.bias', 'layers.1.blocks.1.act_proj.weight',
                'layers.2.blocks.0.mlp.fc2.weight', 'layers.0.downsample.conv.0.conv.weight',
                'layers.2.downsample.conv.2.norm.running_mean', 'norm3.weight']:
        assert key in keys, key
    # No fixed-resolution buffers, no classifier, no downsampling after the last stage.
    assert not [k for k in keys if 'rope' in k or k.startswith(('head.', 'norm.'))]
    assert not [k for k in keys if k.startswith('layers.3.downsample')]
    assert not [k for k in keys if 'conv1.conv.bias' in k or 'conv3.0.conv.bias' in k]


# -- sizes ------------------------------------------------------------------------
@pytest.mark.parametrize('size,expected', [
    ((250, 330), [(63, 83), (32, 42), (16, 21), (8, 11)]),
    ((97, 131), [(25, 33), (13, 17), (7, 9), (4, 5)]),
    ((75, 103), [(19, 26), (10, 13), (5, 7), (3, 4)]),
    ((20, 20), [(5, 5), (3, 3), (2, 2), (1, 1)]),
    ((1, 1), [(1, 1)] * 4),
    ((3, 50), [(1, 13), (1, 7), (1, 4), (1, 2)]),
])
def test_any_input_size(size, expected):
    model = MLLA(arch=SMALL).eval()
    with torch.no_grad():
        outs = model(torch.randn(2, 3, *size))
    assert _sizes(outs) == expected
    assert [o.shape[1] for o in outs] == [16, 32, 64, 128]
    assert all(torch.isfinite(o).all() for o in outs)


def test_rope_follows_the_input_size():
    """The same tokens at another grid shape get other positions (no 224 table)."""
    attn = MLLALinearAttention(16, 2)
    x = torch.randn(1, 12, 16)
    assert not torch.allclose(attn(x, (3, 4)), attn(x, (4, 3)))
    cos, sin = rope_2d_tables((3, 5), 16)
    assert cos.shape == (15, 8)
    # Pairs 0..3 follow the row, 4..7 the column; pair 0 / 4 rotate by 1 rad per step.
    assert torch.allclose(cos.view(3, 5, 8)[2, 4, 0], torch.cos(torch.tensor(2.0)))
    assert torch.allclose(cos.view(3, 5, 8)[2, 4, 4], torch.cos(torch.tensor(4.0)))


def test_rope_is_relative():
    """<R(a) q, R(b) k> depends only on the offset a - b, and R keeps norms."""
    tables = rope_2d_tables((6, 7), 8)
    q, k = torch.randn(8), torch.randn(8)
    rq = apply_rope_2d(q.expand(42, 8), tables).view(6, 7, 8)
    rk = apply_rope_2d(k.expand(42, 8), tables).view(6, 7, 8)
    assert torch.allclose(rq.norm(dim=-1), q.norm().expand(6, 7), atol=1e-5)
    d1 = (rq[1, 2] * rk[3, 0]).sum()
    d2 = (rq[3, 5] * rk[5, 3]).sum()
    d_other = (rq[3, 5] * rk[5, 4]).sum()
    assert torch.allclose(d1, d2, atol=1e-5)
    assert not torch.allclose(d1, d_other, atol=1e-3)
    with pytest.raises(ValueError, match='divisible by 4'):
        rope_2d_tables((2, 2), 6)


def test_patch_merging_pads_before_its_first_conv():
    """Padded cells carry ReLU(bias) of conv.0 (upstream), not the strided conv's zeros."""
    model = MLLA(arch=SMALL).eval()
    merge = model.layers[0].downsample
    with torch.no_grad():
        merge.conv[0].conv.bias.fill_(1.0)
        x = torch.randn(1, 3 * 5, 16)
        out, hw = merge(x, (3, 5))
        first = merge.conv[0](x.transpose(1, 2).reshape(1, 16, 3, 5))
        zero_padded = merge.conv[2](merge.conv[1](first))  # pad after the 1x1 conv instead
    assert hw == (2, 3)
    assert zero_padded.shape[-2:] == (2, 3)
    assert not torch.allclose(out, zero_padded.flatten(2).transpose(1, 2), atol=1e-4)


# -- outputs, freezing, train/eval ---------------------------------------------------
def test_out_indices_subset():
    model = MLLA(arch=SMALL, out_indices=(1, -1)).eval()
    assert model.out_indices == (1, 3)
    assert hasattr(model, 'norm1') and hasattr(model, 'norm3')
    assert not hasattr(model, 'norm0') and not hasattr(model, 'norm2')
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(1, 32, 8, 8), (1, 128, 2, 2)]


def test_output_norms_apply_to_stage_tokens_only():
    """norm_i changes out_i but not what the next stage sees."""
    model = MLLA(arch=SMALL).eval()
    x = torch.randn(1, 3, 40, 40)
    with torch.no_grad():
        ref = model(x)
        model.norm0.weight.mul_(2.0)
        changed = model(x)
    assert torch.allclose(changed[0], 2 * ref[0] - model.norm0.bias.view(1, -1, 1, 1), atol=1e-5)
    for a, b in zip(changed[1:], ref[1:]):
        assert torch.equal(a, b)


@pytest.mark.parametrize('frozen_stages', [0, 1, 2])
def test_frozen_stages(frozen_stages):
    model = MLLA(arch=SMALL, frozen_stages=frozen_stages)
    assert model.train() is model
    frozen = ['patch_embed'] + [f'layers.{i}' for i in range(frozen_stages)] \
        + [f'norm{i}' for i in range(frozen_stages)]
    for name, param in model.named_parameters():
        is_frozen = any(name.startswith(prefix + '.') for prefix in frozen)
        assert param.requires_grad != is_frozen, name
    for name, module in model.named_modules():
        if isinstance(module, nn.BatchNorm2d):
            is_frozen = any(name.startswith(prefix + '.') for prefix in frozen)
            assert module.training != is_frozen, name
    # Frozen BNs keep their running stats through a training forward.
    stem_bn = model.patch_embed.conv1.norm
    before = stem_bn.running_mean.clone()
    model(torch.randn(2, 3, 32, 32))
    assert torch.equal(stem_bn.running_mean, before)


def test_no_freezing_by_default():
    model = MLLA(arch=SMALL).train()
    assert all(p.requires_grad for p in model.parameters())
    assert all(m.training for m in model.modules())


def test_norm_eval():
    model = MLLA(arch=SMALL, norm_eval=True)
    assert model.train() is model
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 5 + 3  # stem convs + one per downsampling
    assert not any(bn.training for bn in bns)
    assert model.layers[1].blocks[0].norm1.training  # LayerNorms still train
    assert all(p.requires_grad for p in model.parameters())
    assert model.eval() is model and not model.training


def test_drop_path_rates_linspace():
    model = MLLA(arch=dict(SMALL, depths=[2, 3, 1, 2]), drop_path_rate=0.3)
    rates = [block.drop_path.drop_prob for stage in model.layers for block in stage.blocks]
    assert rates == pytest.approx(torch.linspace(0, 0.3, 8).tolist())
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.3)
    # Eval mode: stochastic depth is off, so outputs are deterministic.
    model.eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(model(x), model(x)))


def test_with_cp_same_outputs_and_grads(monkeypatch):
    x = torch.randn(2, 3, 37, 45)
    ref_model = MLLA(arch=SMALL, drop_path_rate=0.0)
    cp_model = MLLA(arch=SMALL, drop_path_rate=0.0, with_cp=True)
    cp_model.load_state_dict(ref_model.state_dict())
    calls = []
    original = torch.utils.checkpoint.checkpoint

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(torch.utils.checkpoint, 'checkpoint', counting)
    weights = None
    grads = []
    for model in (ref_model, cp_model):
        outs = model(x)
        if weights is None:
            weights = [torch.randn_like(o) for o in outs]
        loss = sum((o * w).sum() for o, w in zip(outs, weights))
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
        if model is ref_model:
            ref_outs = [o.detach() for o in outs]
    assert len(calls) == 5  # one per block, only in the with_cp model
    for a, b in zip(outs, ref_outs):
        torch.testing.assert_close(a.detach(), b)
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, rtol=1e-4, atol=1e-6, msg=name)
    # No checkpointing when no gradient is needed.
    calls.clear()
    with torch.no_grad():
        cp_model(x)
    assert not calls


@pytest.mark.skipif(not numba_status()[0], reason=numba_status()[1])
def test_fused_cpu_kernels_match_the_torch_ops_in_training():
    """kernel_backend='numba' (fused linear attention, LePE, gate, CPE and dwc) against the
    PyTorch ops: outputs and every parameter gradient, fp32."""
    torch.manual_seed(0)
    models = [MLLA(arch=SMALL, drop_path_rate=0.0, kernel_backend=b) for b in ('torch', 'numba')]
    models[1].load_state_dict(models[0].state_dict())
    x = torch.randn(2, 3, 45, 61)
    results = []
    for model in models:
        outs = model(x)
        loss = sum((o * torch.randn(o.shape, generator=torch.Generator().manual_seed(i))).sum()
                   for i, o in enumerate(outs))
        loss.backward()
        results.append((outs, {n: p.grad for n, p in model.named_parameters()}))
    (ref, ref_grads), (outs, grads) = results
    for o, r in zip(outs, ref):
        assert (o - r).abs().max() <= 1e-5 * r.abs().max()
    for name, g in ref_grads.items():
        if name.endswith('downsample.conv.2.conv.bias'):
            continue        # a bias before BatchNorm: its gradient is 0, both are rounding noise
        assert (grads[name] - g).abs().max() <= 1e-4 * g.abs().max(), name


def test_bad_kernel_backend_lists_the_names():
    with pytest.raises(ValueError, match="kernel_backend must be one of"):
        MLLA(arch=SMALL, kernel_backend='cuda')


def test_registered_in_mmengine():
    from mmengine.registry import MODELS
    model = MODELS.build(dict(type='MLLA', arch=SMALL, out_indices=(2,)))
    assert isinstance(model, MLLA) and model.out_indices == (2,)


# -- numerics against the official implementation -----------------------------------
def test_matches_official_detection_backbone():
    """Golden outputs of LeapLabTHU/MLLA's detection backbone (commit 66b6d297, fp32, eval),
    for a 64x64 batch of 2 and a 75x103 image (stem and patch-merging padding paths).

    Made by running the upstream file on CPU (timm/mmcv imports stubbed) with arch
    embed 8, depths [1,2,1,1], heads [1,2,2,4] and seeded random weights: N(0,1)/sqrt(fan_in)
    for weights, 1+0.2N for norm scales, 0.1N for biases and BN means, U(0.5,1.5) for BN
    variances. The unused 224-input RoPE buffers are left out of the stored state dict."""
    golden = torch.load(GOLDEN, weights_only=True)
    model = MLLA(arch=golden['arch'], drop_path_rate=0.0).eval()
    model.load_state_dict(golden['state_dict'], strict=True)
    with torch.no_grad():
        for x, expected in zip(golden['inputs'], golden['outputs']):
            outs = model(x)
            assert _sizes(outs) == _sizes(expected)
            for out, ref in zip(outs, expected):
                err = (out - ref).abs().max() / ref.abs().max()
                assert err < 1e-5, float(err)


# -- pretrained loading ----------------------------------------------------------------
def _official_layout(model: MLLA) -> dict:
    """A checkpoint laid out as the official ImageNet ones: no norm0..3, plus classifier
    head, final norm and the 224-input RoPE buffers, under 'model'."""
    sd = {k: v.clone() for k, v in model.state_dict().items()
          if not k.startswith(('norm0.', 'norm1.', 'norm2.', 'norm3.'))}
    last = model.num_features[-1]
    sd['head.weight'] = torch.randn(1000, last)
    sd['head.bias'] = torch.randn(1000)
    sd['norm.weight'] = torch.randn(last)
    sd['norm.bias'] = torch.randn(last)
    for i, stage in enumerate(model.layers):
        grid = 56 // 2 ** i
        for j in range(len(stage.blocks)):
            sd[f'layers.{i}.blocks.{j}.attn.rope.rotations'] = torch.randn(
                grid, grid, model.num_features[i] // 2, 2)
    return {'model': sd, 'epoch': 300}


def test_pretrained_official_layout_loads(tmp_path):
    source = MLLA(arch=SMALL)
    with torch.no_grad():
        for p in source.parameters():
            p.normal_()
    path = str(tmp_path / 'MLLA_custom.pth')
    torch.save(_official_layout(source), path)

    model = MLLA(arch=SMALL, init_cfg=dict(type='Pretrained', checkpoint=path))
    result = load_pretrained(model, path, convert=lambda sd, m: m.convert_checkpoint(sd))
    assert sorted(result['missing_keys']) == sorted(
        f'norm{i}.{p}' for i in range(4) for p in ('weight', 'bias'))
    assert result['unexpected_keys'] == []

    model = MLLA(arch=SMALL, init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    loaded = model.state_dict()
    for key, value in source.state_dict().items():
        if key.startswith('norm') and key[4].isdigit():
            expected = torch.ones_like(value) if key.endswith('weight') else torch.zeros_like(value)
            assert torch.equal(loaded[key], expected), key  # fresh output norms
        else:
            assert torch.equal(loaded[key], value), key


def test_pretrained_other_model_is_an_error(tmp_path):
    path = str(tmp_path / 'resnet.pth')
    torch.save({'state_dict': {'conv1.weight': torch.randn(8, 3, 7, 7),
                               'fc.weight': torch.randn(10, 8)}}, path)
    model = MLLA(arch=SMALL, init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(CheckpointError, match=r'no key of .*resnet\.pth.* matches MLLA'):
        model.init_weights()


def test_pretrained_wrong_variant_is_an_error(tmp_path):
    path = str(tmp_path / 'other_width.pth')
    torch.save(_official_layout(MLLA(arch=dict(SMALL, embed_dims=8))), path)
    model = MLLA(arch=SMALL, init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(CheckpointError, match='wrong shape'):
        model.init_weights()


def test_pretrained_missing_file(tmp_path):
    path = str(tmp_path / 'nowhere' / 'MLLA_T.pth')
    model = MLLA(arch=SMALL, init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(FileNotFoundError, match='nowhere/MLLA_T.pth'):
        model.init_weights()


def test_channels_last_conv_is_the_plain_conv():
    """ChannelsLastConv2d (MLLA's stem and patch merging): nn.Conv2d's keys, values and
    gradients, run on NHWC memory -- also for a 1x1 kernel, whose NCHW strides pass as
    channels-last contiguous (oneDNN would otherwise reorder around the convolution)."""
    from mlla_mm.models.layers.common import ChannelsLastConv2d
    for kernel, stride, groups in ((1, 1, 1), (3, 2, 8), (3, 1, 1)):
        torch.manual_seed(0)
        plain = nn.Conv2d(8, 16 if groups == 1 else 8, kernel, stride, kernel // 2,
                          groups=groups)
        ours = ChannelsLastConv2d(8, plain.out_channels, kernel, stride, kernel // 2,
                                  groups=groups)
        ours.load_state_dict(plain.state_dict())
        x = torch.randn(2, 8, 9, 7, requires_grad=True)
        out = ours(x)
        assert out.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(out, plain(x), rtol=1e-5, atol=1e-5)
        g1 = torch.autograd.grad(out.square().sum(), [x, ours.weight, ours.bias])
        g2 = torch.autograd.grad(plain(x).square().sum(), [x, plain.weight, plain.bias])
        for a, b in zip(g1, g2):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
        assert ours.weight.is_contiguous()   # the parameter itself is left as it was

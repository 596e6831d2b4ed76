"""Vim backbone: shapes, presets, registry, golden numerics vs the official code, checkpoints."""
import copy
import math
import os

import pytest
import torch
from torch import nn

from mlla_kernels.dispatch import numba_status
from mlla_mm.models.backbones.vim import Vim, resize_pos_embed
from mlla_mm.models.layers import BiMambaMixer, RMSNorm, SimplePyramid
from mlla_mm.utils.checkpoint import CheckpointError, load_pretrained

GOLDEN = os.path.join(os.path.dirname(__file__), '..', 'data', 'vim_golden.pt')
SMALL = dict(embed_dims=32, depth=2, d_state=4)


def small_vim(**kwargs):
    kwargs.setdefault('arch', SMALL)
    kwargs.setdefault('pretrain_img_size', 64)
    kwargs.setdefault('out_indices', (0, 1, 1, 1))
    return Vim(**kwargs)


@pytest.fixture(scope='module')
def golden():
    return torch.load(GOLDEN, map_location='cpu')


def golden_vim(golden, **kwargs):
    meta = golden['meta']
    model = Vim(arch=dict(embed_dims=meta['embed_dims'], depth=meta['depth']),
                pretrain_img_size=meta['pretrain_img_size'],
                out_indices=tuple(range(meta['depth'])),
                with_adapter=False, **kwargs).eval()
    state_dict = model.convert_checkpoint(dict(golden['state_dict']))
    result = model.load_state_dict(state_dict, strict=False)
    assert not result.missing_keys and not result.unexpected_keys
    return model


def as_map(tokens, grid):
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], *grid)


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


# -- presets / construction -------------------------------------------------------------------
@pytest.mark.parametrize('names,dims', [(('tiny', 'ti', 't'), 192), (('small', 's'), 384),
                                        (('base', 'b'), 768)])
def test_presets_match_the_official_state_dict(names, dims):
    for name in names:
        with torch.device('meta'):   # shapes only: skip the allocation and init
            model = Vim(arch=name, with_adapter=False, final_norm=True)
        assert model.embed_dims == dims and model.depth == 24
    keys = set(model.state_dict())
    # official classification checkpoint: 415 keys = ours + cls_token + head.{weight,bias}
    assert len(keys | {'cls_token', 'head.weight', 'head.bias'}) == 415
    mixer = model.layers[0].mixer
    assert mixer.d_inner == 2 * dims and mixer.dt_rank == math.ceil(dims / 16)
    assert mixer.x_proj.weight.shape == (math.ceil(dims / 16) + 32, 2 * dims)
    assert model.pos_embed.shape == (1, 196, dims)
    assert model.layers[0].mixer.A_b_log.shape == (2 * dims, 16)


def test_vim_ti_parameter_count():
    with torch.device('meta'):
        model = Vim('ti', with_adapter=False, final_norm=True)
    n = sum(p.numel() for p in model.parameters())
    head_and_cls = 192 * 1000 + 1000 + 192 + 192  # head, cls_token, its pos_embed row
    assert abs(n + head_and_cls - 7.15e6) < 0.01e6   # README / code: 7.15M


def test_arch_errors_name_the_fix():
    with pytest.raises(ValueError, match='tiny'):
        Vim(arch='huge')
    with pytest.raises(ValueError, match='embed_dims'):
        Vim(arch=dict(depth=2))
    with pytest.raises(ValueError, match='unknown arch keys'):
        Vim(arch=dict(SMALL, heads=3))
    with pytest.raises(ValueError, match='feature_type'):
        small_vim(feature_type='hidden')
    with pytest.raises(ValueError, match='1 or 4'):
        small_vim(out_indices=(0, 1))
    with pytest.raises(ValueError, match='out of range'):
        small_vim(out_indices=(0, 1, 2, 5))
    with pytest.raises(ValueError, match='final_norm'):
        small_vim(out_indices=(0, 0, 0, 0), final_norm=True)
    with pytest.raises(ValueError, match='kernel_backend'):
        small_vim(kernel_backend='cuda')
    with pytest.raises(ValueError, match='pretrained_cls_token_position'):
        small_vim(pretrained_cls_token_position='last')
    model = Vim(arch=dict(preset='t', depth=3), out_indices=(-1,), with_adapter=False)
    assert model.embed_dims == 192 and model.depth == 3 and model.out_indices == (2,)


def test_registry_lookup():
    from mmengine.registry import MODELS
    model = MODELS.build(dict(type='Vim', arch=SMALL, out_indices=(0, 1, 1, 1)))
    assert isinstance(model, Vim)
    for codebase in ('mmdet', 'mmseg'):
        try:
            registry = __import__(f'{codebase}.registry', fromlist=['MODELS']).MODELS
        except Exception:
            continue
        assert registry.get('Vim') is Vim


# -- shapes ---------------------------------------------------------------------------------------
@pytest.mark.parametrize('stride,expected', [
    (16, [(20, 28), (10, 14), (5, 7), (3, 4)]),    # 75x103 padded to 80x112
    (8, [(20, 26), (10, 13), (5, 7), (3, 4)]),     # grid ceil(75/8) x ceil(103/8) = 10x13
])
def test_odd_sizes_give_strides_4_to_32(stride, expected):
    model = small_vim(patch_stride=stride).eval()
    with torch.no_grad():
        outs = model(torch.randn(2, 3, 75, 103))
    assert [tuple(o.shape[2:]) for o in outs] == expected
    assert all(o.shape[:2] == (2, 32) for o in outs)
    assert all(torch.isfinite(o).all() for o in outs)
    # stride 16 upsamples twice (ConvT-BN-GELU-ConvT); stride 8 once
    assert isinstance(model.fpn1, nn.Sequential) and len(model.fpn1) == (4 if stride == 16 else 1)


def test_raw_block_maps_without_adapter():
    model = small_vim(with_adapter=False, out_indices=(1, 0)).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 40, 50))
    assert [tuple(o.shape) for o in outs] == [(1, 32, 3, 4)] * 2
    assert not any(k.startswith('fpn') for k in model.state_dict())


def test_single_block_output_feeds_every_branch():
    model = small_vim(out_indices=(-1,), feature_type='residual').eval()   # ViTDet style
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape[2:]) for o in outs] == [(16, 16), (8, 8), (4, 4), (2, 2)]
    torch.testing.assert_close(outs[3], nn.functional.max_pool2d(outs[2], 2))


def test_padding_is_right_bottom():
    """Tokens of a padded image equal those of the image cut to whole patches on the top/left."""
    model = small_vim(arch=dict(SMALL, depth=1), with_adapter=False, out_indices=(0,)).eval()
    img = torch.randn(1, 3, 64, 64)
    tokens, grid = model.patch_embed(img[..., :57, :50])
    ref, _ = model.patch_embed(img)
    assert grid == (4, 4)
    ref = ref.reshape(1, 4, 4, -1)
    tokens = tokens.reshape(1, 4, 4, -1)
    torch.testing.assert_close(tokens[:, :3, :3], ref[:, :3, :3])


def test_simple_pyramid_module():
    pyramid = SimplePyramid(8, in_stride=16)
    assert sorted({k.split('.')[0] for k in pyramid.state_dict()}) == ['fpn1', 'fpn2']
    outs = pyramid([torch.randn(1, 8, 6, 5)])           # one map feeds every branch (ViTDet)
    assert [tuple(o.shape[2:]) for o in outs] == [(24, 20), (12, 10), (6, 5), (3, 3)]
    outs = SimplePyramid(8, in_stride=4)([torch.randn(1, 8, 16, 16)] * 4)
    assert [tuple(o.shape[2:]) for o in outs] == [(16, 16), (8, 8), (4, 4), (2, 2)]
    with pytest.raises(ValueError, match='power of two'):
        SimplePyramid(8, in_stride=12)
    with pytest.raises(ValueError, match='one per branch'):
        pyramid([torch.randn(1, 8, 4, 4)] * 2)


# -- numerics --------------------------------------------------------------------------------------
def test_golden_block_outputs_match_official(golden):
    """Mixer outputs of every block equal hustvl/Vim's (see docs/vim.md for how they were made)."""
    model = golden_vim(golden)
    with torch.no_grad():
        outs = model(golden['img'])
    grid = outs[0].shape[2:]
    assert tuple(grid) == (5, 6)        # 80x96 image, pos_embed resized from the 4x4 grid
    for i, out in enumerate(outs):
        assert rel_err(out, as_map(golden['hidden'][i], grid)) < 1e-4, i


def test_golden_residual_features_and_final_norm(golden):
    model = golden_vim(golden, feature_type='residual')
    with torch.no_grad():
        outs = model(golden['img'])
    grid = outs[0].shape[2:]
    res, hid = golden['residual'], golden['hidden']
    # feature j = residual stream after adding mixer j (upstream use_residual_as_feature)
    expected = [res[1], res[2], res[3], res[3] + hid[3]]
    for i, (out, ref) in enumerate(zip(outs, expected)):
        assert rel_err(out, as_map(ref, grid)) < 1e-4, i

    model = golden_vim(golden, final_norm=True)
    norm = RMSNorm(64)
    norm.weight.data.copy_(golden['state_dict']['norm_f.weight'])
    with torch.no_grad():
        last = model(golden['img'])[-1]
        ref = norm(res[3] + hid[3])
    assert rel_err(last, as_map(ref, grid)) < 1e-4
    assert rel_err(model(golden['img'])[0], as_map(hid[0], grid)) < 1e-4


def test_backward_conv_is_the_flipped_causal_conv():
    mixer = BiMambaMixer(16, d_state=4)
    tokens = torch.randn(2, 9, 32)                           # (B, L, Di): the mixer's layout
    x = tokens.transpose(1, 2)                               # (B, Di, L): the official layout
    flipped = mixer.conv1d_b(x.flip(-1))[..., :9].flip(-1)   # official: flip, causal conv, flip
    torch.testing.assert_close(mixer._conv(tokens, mixer.conv1d_b, backward=True),
                               flipped.transpose(1, 2))
    torch.testing.assert_close(mixer._conv(tokens, mixer.conv1d, backward=False),
                               mixer.conv1d(x)[..., :9].transpose(1, 2))


@pytest.mark.skipif(not numba_status()[0], reason=numba_status()[1])
def test_fused_cpu_conv_matches_the_torch_convs_with_gradients(monkeypatch):
    """Both directions' conv + SiLU as one fused kernel (CPU default) against the two
    PyTorch convs: the mixer's output and every gradient."""
    torch.manual_seed(0)
    mixer = BiMambaMixer(16, d_state=4, kernel_backend='numba')
    with torch.no_grad():
        mixer.conv1d_b.weight.normal_()           # asymmetric kernels: the flip is seen
    tokens = torch.randn(2, 9, 16, requires_grad=True)
    weight = torch.randn(2, 9, 16)
    assert BiMambaMixer(16)._conv_runs_numba(tokens)      # 'auto' on CPU takes the fused path
    results = []
    for fused in (True, False):
        monkeypatch.setattr(BiMambaMixer, '_conv_runs_numba', lambda self, x, f=fused: f)
        mixer.zero_grad()
        tokens.grad = None
        out = mixer(tokens)
        (out * weight).sum().backward()
        results.append([out.detach(), tokens.grad.clone()]
                       + [p.grad.clone() for p in mixer.parameters()])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_mamba_init():
    mixer = BiMambaMixer(32, d_state=8)
    expected = torch.log(torch.arange(1, 9, dtype=torch.float32)).expand(64, -1)
    for a in (mixer.A_log, mixer.A_b_log):
        torch.testing.assert_close(a.data, expected)
    assert torch.all(mixer.D == 1) and torch.all(mixer.D_b == 1)
    dt = torch.nn.functional.softplus(mixer.dt_proj.bias)
    assert dt.min() >= 1e-4 - 1e-7 and dt.max() <= 0.1 + 1e-6
    assert not torch.equal(mixer.dt_proj.bias, mixer.dt_proj_b.bias)


def test_naive_and_default_backends_agree(golden):
    naive = golden_vim(golden, kernel_backend='naive')
    default = golden_vim(golden)
    with torch.no_grad():
        for a, b in zip(naive(golden['img']), default(golden['img'])):
            assert rel_err(b, a) < 1e-4


def test_with_cp_same_outputs_and_grads():
    torch.manual_seed(0)
    plain = small_vim(drop_path_rate=0.0)
    ckpt = small_vim(drop_path_rate=0.0, with_cp=True)
    ckpt.load_state_dict(plain.state_dict())
    img = torch.randn(1, 3, 32, 48)
    grads = []
    for model in (plain, ckpt):
        model.train()
        model.zero_grad()
        sum(o.square().mean() for o in model(img)).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and 'layers.0.mixer.A_b_log' in grads[0]
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-4, atol=1e-6)


def test_frozen_stages_and_norm_eval():
    model = small_vim(frozen_stages=1, norm_eval=True)
    model.train()
    assert not model.pos_embed.requires_grad
    assert not any(p.requires_grad for p in model.patch_embed.parameters())
    assert not any(p.requires_grad for p in model.layers[0].parameters())
    assert all(p.requires_grad for p in model.layers[1].parameters())
    assert not model.fpn1[1].training and model.layers[1].training


# -- checkpoints ----------------------------------------------------------------------------
def fake_official_checkpoint(golden, tmp_path, cls_position='middle'):
    sd = copy.deepcopy(golden['state_dict'])
    sd['rope.freqs_cos'] = torch.randn(17, 64)
    sd['rope.freqs_sin'] = torch.randn(17, 64)
    grid_rows = torch.cat([sd['pos_embed'][:, :8], sd['pos_embed'][:, 9:]], 1)
    if cls_position == 'first':
        sd['pos_embed'] = torch.cat([sd['pos_embed'][:, 8:9], grid_rows], 1)
    elif cls_position == 'none':
        sd['pos_embed'] = grid_rows
    path = str(tmp_path / f'vim_{cls_position}.pth')
    torch.save({'model': sd, 'epoch': 300}, path)
    return path, grid_rows


@pytest.mark.parametrize('position', ['middle', 'first', 'none'])
def test_pretrained_loading_with_cls_row(golden, tmp_path, position):
    path, grid_rows = fake_official_checkpoint(golden, tmp_path, position)
    model = Vim(arch=dict(embed_dims=64, depth=4), pretrain_img_size=64, out_indices=(0, 1, 2, 3),
                pretrained_cls_token_position=position)
    result = load_pretrained(model, path, convert=lambda sd, m: m.convert_checkpoint(sd))
    assert result['missing_keys'] and all(k.startswith('fpn') for k in result['missing_keys'])
    assert result['unexpected_keys'] == []
    torch.testing.assert_close(model.pos_embed.data, grid_rows)
    torch.testing.assert_close(model.layers[3].mixer.A_b_log.data,
                               golden['state_dict']['layers.3.mixer.A_b_log'])


def test_pretrained_via_init_cfg_gives_golden_outputs(golden, tmp_path):
    path, _ = fake_official_checkpoint(golden, tmp_path)
    model = Vim(arch=dict(embed_dims=64, depth=4), pretrain_img_size=64, out_indices=(0, 1, 2, 3),
                with_adapter=False, init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    model.eval()
    with torch.no_grad():
        out = model(golden['img'])[2]
    assert rel_err(out, as_map(golden['hidden'][2], out.shape[2:])) < 1e-4


def test_pretrained_grid_resize_and_errors(golden):
    sd = dict(golden['state_dict'])               # 4x4 (+ middle cls) grid of a 64-px model
    model = Vim(arch=dict(embed_dims=64, depth=4), pretrain_img_size=224,   # 14x14 grid
                out_indices=(3,))
    out = model.convert_checkpoint(sd)
    assert out['pos_embed'].shape == (1, 196, 64)
    assert not any(k.startswith(('head.', 'cls_token', 'norm_f', 'rope.')) for k in out)
    grid = torch.cat([sd['pos_embed'][:, :8], sd['pos_embed'][:, 9:]], 1)
    torch.testing.assert_close(out['pos_embed'], resize_pos_embed(grid, (4, 4), (14, 14)))
    with pytest.raises(CheckpointError, match="'middle'"):
        Vim(arch=dict(embed_dims=64, depth=4), pretrain_img_size=64, out_indices=(3,),
            pretrained_cls_token_position='none').convert_checkpoint(sd)
    with pytest.raises(CheckpointError, match='rows'):
        model.convert_checkpoint({'pos_embed': torch.zeros(1, 15, 64)})
    # a checkpoint with another patch size: the patch embedding is dropped, not a shape error
    other = Vim(arch=dict(embed_dims=64, depth=4), patch_size=8, pretrain_img_size=32,
                out_indices=(3,))
    assert 'patch_embed.proj.weight' not in other.convert_checkpoint(sd)

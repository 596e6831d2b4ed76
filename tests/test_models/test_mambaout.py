"""MambaOut backbone: presets, sizes, freezing, checkpointing, official numerics, loading.

``tests/data/mambaout_golden.pt`` holds a small official ``MambaOut`` (yuweihao/MambaOut
commit 9f2f234, ``models/mambaout.py`` run on CPU in fp32, timm imports stubbed) with
arch dims 16-24-40-48, depths 2-1-3-2 and seeded random weights (N(0,1)/sqrt(fan_in)
weights, 1+0.2N norm scales, 0.1N biases), its full state dict (classifier ``head.*`` and
final ``norm.*`` included, as in the released files) and the four stage outputs (after
the blocks, before any norm; NCHW) for a 64x64 batch of 2 and one 75x103 image.
"""
import os

import pytest
import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

import mlla_mm  # noqa: F401  (registers the models)
from mlla_mm.models.backbones.mambaout import GatedCNNBlock, MambaOut
from mlla_mm.utils.checkpoint import CheckpointError, load_pretrained

GOLDEN = os.path.join(os.path.dirname(__file__), '..', 'data', 'mambaout_golden.pt')
SMALL = dict(dims=[16, 24, 32, 40], depths=[1, 2, 1, 1])

# Parameters of the official models minus the classifier (head.*, final norm.*) plus our
# four output norms, counted on upstream's MambaOut built from models/mambaout.py.
PRESETS = [
    # arch, alias, dims, depths, params
    ('femto', None, [48, 96, 192, 288], [3, 3, 9, 3], 5_816_976),
    ('kobe', None, [48, 96, 192, 288], [3, 3, 15, 3], 7_653_648),
    ('tiny', 't', [96, 192, 384, 576], [3, 3, 9, 3], 22_907_424),
    ('small', 's', [96, 192, 384, 576], [3, 4, 27, 3], 44_850_400),
    ('base', 'b', [128, 256, 512, 768], [3, 4, 27, 3], 79_373_372),
]


pytestmark = pytest.mark.usefixtures('one_torch_thread')  # tests/conftest.py


@pytest.fixture(scope='module')
def golden():
    return torch.load(GOLDEN, weights_only=True)


def small_model(**kwargs):
    kwargs.setdefault('drop_path_rate', 0.0)
    return MambaOut(arch=kwargs.pop('arch', SMALL), **kwargs)


def rel_err(a, b):
    return float((a - b).abs().max() / b.abs().max())


# -- presets --------------------------------------------------------------------------
@pytest.mark.parametrize('arch,alias,dims,depths,num_params', PRESETS)
def test_presets_match_upstream(arch, alias, dims, depths, num_params):
    model = MambaOut(arch=arch).eval()
    assert model.dims == dims and model.depths == depths
    assert [len(stage) for stage in model.stages] == depths
    assert model.out_channels == dims
    assert sum(p.numel() for p in model.parameters()) == num_params
    if alias:
        assert MambaOut.arch_zoo[alias] == MambaOut.arch_zoo[arch]
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 37, 50))
    assert [tuple(o.shape) for o in outs] == [
        (1, dims[0], 10, 13), (1, dims[1], 5, 7), (1, dims[2], 3, 4), (1, dims[3], 2, 2)]
    assert all(o.is_contiguous() and torch.isfinite(o).all() for o in outs)


def test_block_hyper_parameters_are_upstream():
    block = MambaOut('tiny').stages[2][0]
    assert isinstance(block, GatedCNNBlock)
    assert block.fc1.out_features == 2 * 1024  # hidden = int(8/3 * 384) = 1024, twice
    assert block.split_sizes == (1024, 1024 - 384, 384)
    assert block.conv.kernel_size == (7, 7) and block.conv.groups == 384
    assert block.norm.eps == 1e-6


def test_arch_overrides_and_errors():
    model = MambaOut(arch=dict(preset='B', depths=[1, 1, 1, 1]))
    assert model.dims == [128, 256, 512, 768] and model.depths == [1, 1, 1, 1]
    with pytest.raises(ValueError, match=r"unknown arch 'huge'.*'base'.*'femto'.*'kobe'"):
        MambaOut(arch='huge')
    with pytest.raises(ValueError, match=r"missing \['depths'\]"):
        MambaOut(arch=dict(dims=[8, 8, 8, 8]))
    with pytest.raises(ValueError, match='unknown arch keys'):
        MambaOut(arch=dict(SMALL, embed_dims=8))
    with pytest.raises(ValueError, match='same length'):
        MambaOut(arch=dict(dims=[8, 16], depths=[1, 1, 1]))
    with pytest.raises(ValueError, match='out_indices'):
        small_model(out_indices=(4,))
    with pytest.raises(ValueError, match='frozen_stages'):
        small_model(frozen_stages=5)
    with pytest.raises(ValueError, match='odd'):
        small_model(kernel_size=4)
    with pytest.raises(ValueError, match=r'\(B, 3, H, W\)'):
        small_model()(torch.randn(1, 1, 32, 32))


def test_official_parameter_names():
    keys = set(small_model().state_dict())
    for key in ['downsample_layers.0.conv1.weight', 'downsample_layers.0.norm1.bias',
                'downsample_layers.0.conv2.bias', 'downsample_layers.0.norm2.weight',
                'downsample_layers.3.conv.weight', 'downsample_layers.1.norm.bias',
                'stages.1.1.norm.weight', 'stages.1.1.fc1.weight', 'stages.2.0.conv.weight',
                'stages.3.0.fc2.bias', 'norm0.weight', 'norm3.bias']:
        assert key in keys, key
    assert not [k for k in keys if k.startswith(('head.', 'norm.'))]


def test_registered_in_every_codebase():
    from mmengine.registry import MODELS
    model = MODELS.build(dict(type='MambaOut', arch=SMALL, out_indices=(1, 3)))
    assert isinstance(model, MambaOut) and model.out_indices == (1, 3)
    for codebase in ('mmdet', 'mmseg', 'mmpretrain'):
        try:
            registry = __import__(f'{codebase}.registry', fromlist=['MODELS']).MODELS
        except Exception:  # codebase not installed here
            continue
        # module_dict, not get(): get() would import all of the codebase's models (slow)
        assert registry.module_dict['MambaOut'] is MambaOut, codebase


# -- sizes and outputs ------------------------------------------------------------------
@pytest.mark.parametrize('size,expected', [
    ((97, 131), [(25, 33), (13, 17), (7, 9), (4, 5)]),
    ((64, 64), [(16, 16), (8, 8), (4, 4), (2, 2)]),
    ((1, 1), [(1, 1)] * 4),
    ((3, 50), [(1, 13), (1, 7), (1, 4), (1, 2)]),
])
def test_any_input_size(size, expected):
    model = small_model().eval()
    with torch.no_grad():
        outs = model(torch.randn(2, 3, *size))
    assert [tuple(o.shape[-2:]) for o in outs] == expected
    assert [o.shape[1] for o in outs] == SMALL['dims']
    assert all(torch.isfinite(o).all() for o in outs)


def test_out_indices_subset_and_norms_touch_outputs_only():
    model = small_model(out_indices=(1, -1)).eval()
    assert model.out_indices == (1, 3) and model.out_channels == [24, 40]
    assert not hasattr(model, 'norm0') and not hasattr(model, 'norm2')
    x = torch.randn(1, 3, 48, 40)
    with torch.no_grad():
        ref = model(x)
        model.norm1.weight.mul_(2.0)
        changed = model(x)
    assert [tuple(o.shape) for o in ref] == [(1, 24, 6, 5), (1, 40, 2, 2)]
    # norm1 rescales out 1, but the next stages see the un-normed stage output
    torch.testing.assert_close(changed[0], 2 * ref[0] - model.norm1.bias.view(1, -1, 1, 1))
    assert torch.equal(changed[1], ref[1])


@pytest.mark.parametrize('frozen_stages', [0, 1, 3])
def test_frozen_stages(frozen_stages):
    model = small_model(frozen_stages=frozen_stages)
    assert model.train() is model
    frozen = {'downsample_layers.0'} | {name for i in range(frozen_stages) for name in
                                        (f'downsample_layers.{i}', f'stages.{i}', f'norm{i}')}
    parts = {f'downsample_layers.{i}': model.downsample_layers[i] for i in range(4)}
    parts.update({f'stages.{i}': model.stages[i] for i in range(4)})
    parts.update({f'norm{i}': getattr(model, f'norm{i}') for i in range(4)})
    for name, part in parts.items():
        is_frozen = name in frozen
        assert all(m.training != is_frozen for m in part.modules()), name
        assert all(p.requires_grad != is_frozen for p in part.parameters()), name
    # a training step only reaches the trainable parameters
    sum(o.sum() for o in model(torch.randn(1, 3, 32, 32))).backward()
    for name, param in model.named_parameters():
        assert (param.grad is None) == (not param.requires_grad), name


def test_norm_eval_is_accepted_and_changes_nothing():
    model = small_model(norm_eval=True)
    assert model.train() is model and model.training
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert all(m.training for m in model.modules())


def test_drop_path_rates_linspace():
    model = small_model(drop_path_rate=0.3)
    rates = [block.drop_path.drop_prob for stage in model.stages for block in stage]
    assert rates == pytest.approx(torch.linspace(0, 0.3, sum(SMALL['depths'])).tolist())
    model.train()
    x = torch.randn(4, 3, 32, 32)
    torch.manual_seed(0)
    first = model(x)
    second = model(x)
    assert not torch.equal(first[-1], second[-1])  # stochastic depth is on in training
    model.eval()
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(model(x), model(x)))


def test_with_cp_same_outputs_and_grads(monkeypatch):
    x = torch.randn(2, 3, 37, 45)
    plain = small_model()
    checkpointed = small_model(with_cp=True, frozen_stages=0)
    checkpointed.load_state_dict(plain.state_dict())
    plain.downsample_layers[0].requires_grad_(False)
    calls = []
    original = torch.utils.checkpoint.checkpoint

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(torch.utils.checkpoint, 'checkpoint', counting)
    weights, results = None, []
    for model in (plain, checkpointed):
        outs = model(x)
        weights = weights or [torch.randn_like(o) for o in outs]
        sum((o * w).sum() for o, w in zip(outs, weights)).backward()
        results.append(([o.detach() for o in outs],
                        {n: p.grad for n, p in model.named_parameters() if p.requires_grad}))
    assert len(calls) == sum(SMALL['depths'])  # one per block, only in the with_cp model
    for a, b in zip(*(r[0] for r in results)):
        torch.testing.assert_close(a, b)
    assert results[0][1].keys() == results[1][1].keys()
    for name, grad in results[0][1].items():
        assert results[1][1][name] is not None, name  # the first block behind the frozen stem
        torch.testing.assert_close(results[1][1][name], grad, rtol=1e-4, atol=1e-6, msg=name)
    calls.clear()
    with torch.no_grad():
        checkpointed(x)
    assert not calls


# -- numerics against the official implementation ------------------------------------------
def _golden_model(golden, **kwargs):
    model = MambaOut(arch=golden['arch'], drop_path_rate=0.0, **kwargs).eval()
    result = model.load_state_dict(model.convert_checkpoint(dict(golden['state_dict'])),
                                   strict=False)
    assert sorted(result.missing_keys) == sorted(
        f'norm{i}.{p}' for i in model.out_indices for p in ('weight', 'bias'))
    assert result.unexpected_keys == []
    return model


def test_stage_features_match_official(golden):
    """The blocks' outputs before the output norms equal upstream's stage outputs."""
    model = _golden_model(golden)
    captured = []
    for stage in model.stages:  # the last block's channels-last output = the stage's
        stage[-1].register_forward_hook(lambda m, i, o: captured.append(o.permute(0, 3, 1, 2)))
    errors = []
    with torch.no_grad():
        for x, expected in zip(golden['inputs'], golden['outputs']):
            captured.clear()
            model(x)
            assert [c.shape for c in captured] == [e.shape for e in expected]
            errors += [rel_err(c, e) for c, e in zip(captured, expected)]
    print(f'max relative error vs upstream: {max(errors):.2e}')
    assert max(errors) <= 1e-5, errors


def test_outputs_are_normed_official_features(golden):
    """out_i = LayerNorm(eps 1e-6, norm{i} affine)(upstream stage i output), NCHW."""
    model = _golden_model(golden)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for i in range(4):
            norm = getattr(model, f'norm{i}')
            norm.weight.copy_(1 + 0.2 * torch.randn(norm.weight.shape, generator=gen))
            norm.bias.copy_(0.1 * torch.randn(norm.bias.shape, generator=gen))
        for x, expected in zip(golden['inputs'], golden['outputs']):
            for i, (out, feat) in enumerate(zip(model(x), expected)):
                norm = getattr(model, f'norm{i}')
                ref = F.layer_norm(feat.permute(0, 2, 3, 1), norm.normalized_shape, norm.weight,
                                   norm.bias, 1e-6).permute(0, 3, 1, 2)
                assert rel_err(out, ref) <= 1e-5, i


# -- pretrained loading ------------------------------------------------------------------
def _official_file(path, model, **extra):
    """A file laid out as the released mambaout_*.pth: a bare state dict with the MLP
    classifier head and the final norm, no output norms."""
    sd = {k: v.clone() for k, v in model.state_dict().items()
          if not k.startswith(tuple(f'norm{i}.' for i in range(4)))}
    last = model.dims[-1]
    sd.update({'norm.weight': torch.randn(last), 'norm.bias': torch.randn(last),
               'head.fc1.weight': torch.randn(4 * last, last), 'head.fc1.bias': torch.randn(4 * last),
               'head.norm.weight': torch.randn(4 * last), 'head.norm.bias': torch.randn(4 * last),
               'head.fc2.weight': torch.randn(1000, 4 * last), 'head.fc2.bias': torch.randn(1000)},
              **extra)
    torch.save(sd, path)
    return sd


def test_official_file_loads_unchanged(tmp_path, golden):
    path = str(tmp_path / 'mambaout_custom.pth')
    torch.save(golden['state_dict'], path)  # the upstream model's own state dict
    model = MambaOut(arch=golden['arch'], init_cfg=dict(type='Pretrained', checkpoint=path))
    result = load_pretrained(model, path, convert=lambda sd, m: m.convert_checkpoint(sd))
    assert sorted(result['missing_keys']) == sorted(
        f'norm{i}.{p}' for i in range(4) for p in ('weight', 'bias'))
    assert result['unexpected_keys'] == []

    model.init_weights()  # as a config does it
    loaded = model.state_dict()
    for key, value in golden['state_dict'].items():
        if not key.startswith(('head.', 'norm.')):
            assert torch.equal(loaded[key], value), key
    assert torch.equal(model.norm2.weight, torch.ones(40))  # output norms start fresh


def test_file_of_another_size_is_an_error(tmp_path):
    path = str(tmp_path / 'mambaout_femto_like.pth')
    _official_file(path, small_model(arch=dict(SMALL, depths=[1, 1, 1, 1])))
    model = small_model(init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(CheckpointError, match=r'missing from the file.*stages\.1\.1\..*'
                       r'another MambaOut size'):
        model.init_weights()
    deeper = str(tmp_path / 'mambaout_kobe_like.pth')
    _official_file(deeper, small_model(arch=dict(SMALL, depths=[1, 3, 1, 1])))
    model = small_model(init_cfg=dict(type='Pretrained', checkpoint=deeper))
    with pytest.raises(CheckpointError, match=r'unused .*stages\.1\.2\.'):
        model.init_weights()
    wider = str(tmp_path / 'mambaout_wider.pth')
    _official_file(wider, small_model(arch=dict(SMALL, dims=[16, 32, 32, 40])))
    with pytest.raises(CheckpointError, match='wrong shape'):
        small_model(init_cfg=dict(type='Pretrained', checkpoint=wider)).init_weights()


def test_other_architecture_is_an_error(tmp_path):
    path = str(tmp_path / 'resnet.pth')
    torch.save({'state_dict': {'conv1.weight': torch.randn(8, 3, 7, 7),
                               'fc.weight': torch.randn(10, 8)}}, path)
    model = small_model(init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(CheckpointError, match=r'no key of .*resnet\.pth.* matches MambaOut'):
        model.init_weights()


# -- configs -----------------------------------------------------------------------------
CONFIG_DIR = os.path.join(os.path.dirname(__file__), '..', '..', 'configs')


@pytest.mark.parametrize('name', [
    'mask_rcnn_mambaout_t.py', 'mask_rcnn_mambaout_s.py', 'mask_rcnn_mambaout_b.py',
    'upernet_mambaout_t.py', 'upernet_mambaout_s.py', 'upernet_mambaout_b.py',
    'demo/mask_rcnn_mambaout_demo.py', 'demo/upernet_mambaout_demo.py'])
def test_config_channels_follow_the_arch(name):
    from mmengine import Config
    cfg = Config.fromfile(os.path.join(CONFIG_DIR, name))
    backbone = cfg.model.backbone
    assert backbone.type == 'MambaOut'
    arch = backbone.arch
    dims = list((MambaOut.arch_zoo[arch] if isinstance(arch, str) else arch)['dims'])
    if 'neck' in cfg.model:
        assert list(cfg.model.neck.in_channels) == dims
    else:
        assert list(cfg.model.decode_head.in_channels) == dims
        assert cfg.model.auxiliary_head.in_channels == dims[2]
    if isinstance(arch, str):
        assert os.path.basename(backbone.init_cfg.checkpoint) == f'mambaout_{arch}.pth'

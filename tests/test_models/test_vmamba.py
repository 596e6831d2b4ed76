"""VMamba backbone: shapes, registry, official numerics and checkpoints, freezing, checkpointing.

``tests/data/vmamba_golden.pt`` holds two small official ``Backbone_VSSM`` models
(VMamba commit 2ed52ead, ``forward_type='v05_noz'``, ln2d, patch embed v2,
downsample v3) with random weights -- SSM parameters and norms included -- and
their fp32 outputs on a 64x64 and a 75x103 image, computed on CPU with
VMamba's torch reference scan. Weights and inputs are stored as fp16 values,
which are exact in fp32.
"""
import math
import os

import pytest
import torch
import torch.nn.functional as F

import mlla_mm  # noqa: F401  (registers the models)
from mlla_mm.models.backbones.vmamba import VMamba
from mlla_mm.models.layers.ss2d import SS2D, Linear2d
from mlla_mm.utils.checkpoint import load_pretrained

GOLDEN = os.path.join(os.path.dirname(__file__), '..', 'data', 'vmamba_golden.pt')
SMALL = dict(embed_dims=16, depths=[1, 1, 2, 1])

# Parameter counts of the official Backbone_VSSM (no classifier, 4 outnorms),
# measured by building upstream's model; our key sets and shapes were equal.
OFFICIAL_PARAMS = dict(tiny=29_481_408, small=49_380_096, base=87_534_592)


def small_model(**kwargs):
    kwargs.setdefault('drop_path_rate', 0.0)
    return VMamba(arch=kwargs.pop('arch', SMALL), **kwargs)


@pytest.mark.parametrize('arch,alias,dims', [('tiny', 't', 96), ('small', 's', 96),
                                             ('base', 'b', 128)])
def test_presets_build_and_odd_sizes(arch, alias, dims):
    model = VMamba(alias).eval()
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS[arch]
    assert model.out_channels == [dims, 2 * dims, 4 * dims, 8 * dims]
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 17, 23))
    assert [tuple(o.shape) for o in outs] == [
        (1, dims, 5, 6), (1, 2 * dims, 3, 3), (1, 4 * dims, 2, 2), (1, 8 * dims, 1, 1)]
    assert all(torch.isfinite(o).all() for o in outs)


def test_preset_hyper_parameters():
    tiny = VMamba('tiny')
    op = tiny.layers[0].blocks[0].op
    assert (op.d_inner, op.d_state, op.dt_rank, op.directions) == (96, 1, 6, 4)
    assert [len(layer.blocks) for layer in tiny.layers] == [2, 2, 8, 2]
    small = VMamba(dict(preset='small', depths=[1, 1, 1, 1]))
    # dt_rank = ceil(C / 16) from the stage width, not from Di.
    assert [layer.blocks[0].op.dt_rank for layer in small.layers] == [6, 12, 24, 48]
    assert small.layers[3].blocks[0].op.d_inner == 1536
    # drop path increases linearly over all blocks up to drop_path_rate
    rates = [b.drop_path.drop_prob for layer in tiny.layers for b in layer.blocks]
    assert rates[0] == 0 and math.isclose(rates[-1], 0.2, rel_tol=1e-6)


def test_odd_non_square_sizes_and_out_indices():
    model = small_model().eval()
    with torch.no_grad():
        outs = model(torch.randn(2, 3, 75, 103))
    assert [tuple(o.shape[2:]) for o in outs] == [(19, 26), (10, 13), (5, 7), (3, 4)]
    assert [o.shape[1] for o in outs] == [16, 32, 64, 128]
    assert all(o.is_contiguous() for o in outs)
    partial = small_model(out_indices=(1, -1)).eval()
    assert partial.out_indices == (1, 3)
    assert not hasattr(partial, 'outnorm0') and hasattr(partial, 'outnorm3')
    with torch.no_grad():
        outs = partial(torch.randn(1, 3, 31, 17))
    assert [tuple(o.shape) for o in outs] == [(1, 32, 4, 3), (1, 128, 1, 1)]


def test_registry_lookup():
    from mmengine.registry import MODELS
    model = MODELS.build(dict(type='VMamba', arch=SMALL, out_indices=(0, 2)))
    assert isinstance(model, VMamba) and model.out_indices == (0, 2)
    for codebase in ('mmdet', 'mmseg'):
        try:
            registry = __import__(f'{codebase}.registry', fromlist=['MODELS']).MODELS
        except Exception:  # codebase not installed here
            continue
        # module_dict, not get(): get() would import all of the codebase's models (slow)
        assert registry.module_dict['VMamba'] is VMamba


def test_bad_arguments_are_explained():
    with pytest.raises(ValueError, match='unknown arch'):
        VMamba('huge')
    with pytest.raises(ValueError, match='missing'):
        VMamba(dict(depths=[1, 1, 1, 1]))
    with pytest.raises(ValueError, match='unknown arch keys'):
        VMamba(dict(SMALL, ssm_raito=2.0))
    with pytest.raises(ValueError, match='directions'):
        SS2D(16, directions=3)
    with pytest.raises(ValueError, match='kernel_backend'):
        SS2D(16, kernel_backend='cuda')
    with pytest.raises(ValueError, match=r'\(N, 3, H, W\)'):
        small_model()(torch.randn(1, 1, 32, 32))


def test_ss2d_init_is_vmamba_v0():
    op = SS2D(32, d_state=4, ssm_ratio=2.0)
    assert op.x_proj_weight.shape == (4, 2 + 8, 64)
    assert op.dt_projs_weight.shape == (4, 64, 2)
    assert torch.equal(op.A_logs, torch.log(torch.arange(1., 5.)).expand(256, 4))
    assert torch.equal(op.Ds, torch.ones(256))
    dt = F.softplus(op.dt_projs_bias)
    assert dt.min() >= 1e-3 * (1 - 1e-4) and dt.max() <= 0.1 * (1 + 1e-4)
    assert op.dt_projs_weight.abs().max() <= 2 ** -0.5


@pytest.mark.parametrize('case', ['main', 'tinylike'])
def test_matches_official_backbone(case):
    golden = torch.load(GOLDEN, map_location='cpu')[case]
    cfg = golden['config']
    model = VMamba(dict(embed_dims=cfg['dims'], depths=cfg['depths'],
                        ssm_ratio=cfg['ratio'], d_state=cfg['d_state'])).eval()
    model.load_state_dict({k: v.float() for k, v in golden['state_dict'].items()}, strict=True)
    for image, expected in zip(golden['inputs'], golden['outputs']):
        with torch.no_grad():
            outs = model(image.float())
        assert len(outs) == len(expected) == 4
        for out, ref in zip(outs, expected):
            assert out.shape == ref.shape
            rel = (out - ref).abs().max() / ref.abs().max()
            assert rel < 1e-4, f'{case} {tuple(image.shape)}: relative error {rel:.2e}'


def test_naive_and_default_kernel_backend_agree():
    torch.manual_seed(1)
    default = small_model(arch=dict(SMALL, d_state=2)).eval()
    naive = small_model(arch=dict(SMALL, d_state=2), kernel_backend='naive').eval()
    naive.load_state_dict(default.state_dict())
    assert naive.layers[0].blocks[0].op.kernel_backend == 'naive'
    image = torch.randn(1, 3, 45, 38)
    with torch.no_grad():
        for a, b in zip(default(image), naive(image)):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def _official_layout(state_dict):
    """Our keys as an official VMamba ImageNet checkpoint spells them (old and new names)."""
    sd = {k: v.clone() for k, v in state_dict.items() if not k.startswith('outnorm')}
    sd['classifier.norm.weight'] = torch.ones(128)
    sd['classifier.norm.bias'] = torch.zeros(128)
    sd['classifier.head.weight'] = torch.zeros(1000, 128)
    sd['classifier.head.bias'] = torch.zeros(1000)
    for old, new in (('patch_embed.0.', 'patch_embed.proj.'),
                     ('patch_embed.2.', 'patch_embed.norm.'),
                     ('layers.0.blocks.0.norm.', 'layers.0.blocks.0.ln_1.'),
                     ('layers.1.blocks.0.op.', 'layers.1.blocks.0.self_attention.')):
        for k in [k for k in sd if k.startswith(old)]:
            sd[new + k[len(old):]] = sd.pop(k)
    # Linear2d weights saved as 1x1 conv kernels
    for k in ('layers.2.blocks.1.mlp.fc1.weight', 'layers.3.blocks.0.op.in_proj.weight'):
        sd[k] = sd[k][:, :, None, None]
    return sd


def test_official_checkpoint_loads(tmp_path):
    source = small_model()
    path = str(tmp_path / 'vssm_official.pth')
    torch.save({'model': _official_layout(source.state_dict()), 'epoch': 3}, path)

    target = small_model()
    result = load_pretrained(target, path, convert=lambda sd, m: m.convert_checkpoint(sd))
    assert sorted(result['missing_keys']) == sorted(
        f'outnorm{i}.{p}' for i in range(4) for p in ('weight', 'bias'))
    assert result['unexpected_keys'] == []
    ours = target.state_dict()
    for k, v in source.state_dict().items():
        if not k.startswith('outnorm'):
            assert torch.equal(ours[k], v), k

    # the same through init_cfg, as a config would do it
    configured = small_model(init_cfg=dict(type='Pretrained', checkpoint=path))
    configured.init_weights()
    torch.testing.assert_close(configured.layers[1].blocks[0].op.A_logs,
                               source.layers[1].blocks[0].op.A_logs)
    torch.testing.assert_close(configured.patch_embed[0].weight, source.patch_embed[0].weight)


def test_linear2d_accepts_conv_weights():
    layer = Linear2d(8, 4)
    weight = torch.randn(4, 8, 1, 1)
    layer.load_state_dict({'weight': weight, 'bias': torch.zeros(4)})
    assert layer.weight.shape == (4, 8) and torch.equal(layer.weight, weight.flatten(1))
    x = torch.randn(2, 8, 3, 5)
    torch.testing.assert_close(layer(x), F.conv2d(x, weight))


def test_frozen_stages():
    model = small_model(frozen_stages=2)
    model.train()
    frozen = [model.patch_embed, model.layers[0], model.layers[1], model.outnorm0, model.outnorm1]
    for module in frozen:
        assert not module.training
        assert all(not p.requires_grad for p in module.parameters())
    for module in (model.layers[2], model.layers[3], model.outnorm2):
        assert module.training
        assert all(p.requires_grad for p in module.parameters())
    assert model.train() is model
    only_stem = small_model(frozen_stages=0).train()
    assert not any(p.requires_grad for p in only_stem.patch_embed.parameters())
    assert all(p.requires_grad for p in only_stem.layers[0].parameters())


def test_with_cp_gives_same_outputs_and_gradients():
    torch.manual_seed(2)
    plain = small_model(arch=dict(embed_dims=8, depths=[1, 2, 1, 1])).train()
    checkpointed = small_model(arch=dict(embed_dims=8, depths=[1, 2, 1, 1]), with_cp=True).train()
    checkpointed.load_state_dict(plain.state_dict())
    image = torch.randn(1, 3, 21, 27)
    grads = []
    for model in (plain, checkpointed):
        outs = model(image)
        sum(o.square().mean() for o in outs).backward()
        grads.append({k: p.grad.clone() for k, p in model.named_parameters()})
        grads[-1]['__outs__'] = torch.cat([o.flatten() for o in outs]).detach()
    for k in grads[0]:
        torch.testing.assert_close(grads[0][k], grads[1][k], rtol=1e-5, atol=1e-6, msg=k)


CONFIG_DIR = os.path.join(os.path.dirname(__file__), '..', '..', 'configs')
# Official drop_path per variant (VMamba's vssm1 det/seg configs).
OFFICIAL_DROP_PATH = dict(tiny=0.2, small=0.3, base=0.6)


@pytest.mark.parametrize('name', [
    'mask_rcnn_vmamba_t.py', 'mask_rcnn_vmamba_t_3x.py', 'mask_rcnn_vmamba_s.py',
    'mask_rcnn_vmamba_s_3x.py', 'mask_rcnn_vmamba_b.py', 'upernet_vmamba_t.py',
    'upernet_vmamba_s.py', 'upernet_vmamba_b.py', 'demo/mask_rcnn_vmamba_demo.py',
    'demo/upernet_vmamba_demo.py'])
def test_configs_parse_and_match_backbone(name):
    from mmengine import Config
    cfg = Config.fromfile(os.path.join(CONFIG_DIR, name))
    backbone = cfg.model.backbone
    assert backbone.type == 'VMamba'
    arch = backbone.arch  # widths read from the preset, without building the model
    dims = (VMamba.arch_zoo[arch] if isinstance(arch, str) else arch)['embed_dims']
    channels = [dims * 2 ** i for i in range(4)]
    if 'neck' in cfg.model:
        assert list(cfg.model.neck.in_channels) == channels
    else:
        assert list(cfg.model.decode_head.in_channels) == channels
        assert cfg.model.auxiliary_head.in_channels == channels[2]
    if isinstance(arch, str):
        assert backbone.drop_path_rate == OFFICIAL_DROP_PATH[arch]
        assert os.path.basename(backbone.init_cfg.checkpoint) in (
            'vssm1_tiny_0230s_ckpt_epoch_264.pth', 'vssm_small_0229_ckpt_epoch_222.pth',
            'vssm_base_0229_ckpt_epoch_237.pth')
        expected_lr = 1e-4 if 'neck' in cfg.model else 6e-5
        assert cfg.optim_wrapper.optimizer.lr == expected_lr
    if name.startswith('mask_rcnn'):
        pipeline = cfg.train_dataloader.dataset.pipeline
        multi_scale = any(t['type'] == 'RandomChoice' for t in pipeline)
        assert multi_scale == name.endswith('_3x.py')
        assert cfg.train_cfg.max_epochs == (36 if name.endswith('_3x.py') else 12)

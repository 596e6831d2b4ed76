"""LayerDecayOptimWrapperConstructor: layer ids, lr scales and the no-decay set."""
import pytest
import torch
from torch import nn

import mlla_mm  # noqa: F401  (registers the constructor)
from mlla_mm.engine import LayerDecayOptimWrapperConstructor, describe_groups
from mlla_mm.models.backbones.vim import Vim

LR, WD, RATE = 1e-3, 0.05, 0.5


class Detector(nn.Module):
    """backbone + neck + head, named as in mmdet/mmseg models."""

    def __init__(self, depth=3):
        super().__init__()
        self.backbone = Vim(arch=dict(embed_dims=16, depth=depth, d_state=4),
                            pretrain_img_size=32, out_indices=(-1,))
        self.neck = nn.Conv2d(16, 8, 1)
        self.decode_head = nn.Sequential(nn.Conv2d(8, 4, 1), nn.BatchNorm2d(4))


def build(model, **paramwise):
    ctor = LayerDecayOptimWrapperConstructor(
        dict(optimizer=dict(type='AdamW', lr=LR, weight_decay=WD)),
        dict(layer_decay_rate=RATE, **paramwise))
    wrapper = ctor(model)
    return wrapper, describe_groups(wrapper.optimizer.param_groups)


def test_layer_ids_and_scales():
    model = Detector(depth=3)      # ids: 0 embed, 1..3 blocks, 4 the rest
    _, info = build(model)

    def scale(name):
        return info[name]['lr'] / LR

    assert info['backbone.patch_embed.proj.weight']['layer_id'] == 0
    assert scale('backbone.patch_embed.proj.weight') == pytest.approx(RATE ** 4)
    assert info['backbone.pos_embed']['layer_id'] == 0
    for i in range(3):
        name = f'backbone.layers.{i}.mixer.in_proj.weight'
        assert info[name]['layer_id'] == i + 1
        assert scale(name) == pytest.approx(RATE ** (3 - i))
    for name in ('backbone.fpn1.0.weight', 'backbone.fpn2.0.weight', 'neck.weight',
                 'decode_head.0.weight'):
        assert info[name]['layer_id'] == 4 and scale(name) == 1.0
    # every trainable parameter is in exactly one group
    names = [n for g in build(model)[0].optimizer.param_groups for n in g['param_names']]
    assert sorted(names) == sorted(n for n, _ in model.named_parameters())


def test_no_weight_decay_set():
    _, info = build(Detector(depth=3))
    no_decay = ['backbone.pos_embed', 'backbone.patch_embed.proj.bias',
                'backbone.layers.0.norm.weight', 'backbone.layers.0.mixer.A_log',
                'backbone.layers.0.mixer.A_b_log', 'backbone.layers.0.mixer.D',
                'backbone.layers.0.mixer.D_b', 'backbone.layers.0.mixer.conv1d.bias',
                'backbone.layers.0.mixer.dt_proj.bias', 'backbone.fpn1.1.weight',
                'neck.bias', 'decode_head.1.weight']
    decay = ['backbone.patch_embed.proj.weight', 'backbone.layers.0.mixer.in_proj.weight',
             'backbone.layers.0.mixer.conv1d_b.weight', 'backbone.layers.2.mixer.x_proj_b.weight',
             'backbone.fpn1.0.weight', 'neck.weight']
    for name in no_decay:
        assert info[name]['weight_decay'] == 0.0, name
    for name in decay:
        assert info[name]['weight_decay'] == WD, name


def test_num_layers_override_frozen_params_and_bare_backbone():
    model = Detector(depth=3)
    model.backbone.patch_embed.proj.weight.requires_grad = False
    _, info = build(model, num_layers=5)
    assert 'backbone.patch_embed.proj.weight' not in info
    assert info['backbone.layers.0.mixer.in_proj.weight']['lr'] == pytest.approx(LR * RATE ** 5)
    # a bare backbone: its own params carry the ids, no 'backbone.' prefix
    _, info = build(model.backbone)
    assert info['layers.2.mixer.out_proj.weight']['layer_id'] == 3
    assert info['pos_embed']['layer_id'] == 0 and info['pos_embed']['weight_decay'] == 0.0


def test_errors():
    with pytest.raises(ValueError, match='layer_decay_rate'):
        LayerDecayOptimWrapperConstructor(dict(optimizer=dict(type='AdamW', lr=LR)), dict())
    with pytest.raises(ValueError, match='unsupported'):
        LayerDecayOptimWrapperConstructor(dict(optimizer=dict(type='AdamW', lr=LR)),
                                          dict(layer_decay_rate=0.9, norm_decay_mult=0.))
    with pytest.raises(ValueError, match='num_layers'):
        build(nn.Sequential(nn.Linear(2, 2)))
    with pytest.raises(ValueError, match='block 2'):
        build(Detector(depth=3), num_layers=2)


def test_built_through_the_registry_and_steps():
    from mmengine.optim import build_optim_wrapper
    model = Detector(depth=3)
    wrapper = build_optim_wrapper(model, dict(
        type='OptimWrapper', constructor='LayerDecayOptimWrapperConstructor',
        optimizer=dict(type='AdamW', lr=LR, weight_decay=WD),
        paramwise_cfg=dict(layer_decay_rate=RATE)))
    lrs = {g['layer_id']: g['lr'] for g in wrapper.optimizer.param_groups}
    assert lrs == pytest.approx({k: LR * RATE ** (4 - k) for k in range(5)})
    before = model.backbone.layers[0].mixer.in_proj.weight.detach().clone()
    out = model.backbone(torch.randn(1, 3, 32, 32))
    wrapper.update_params(sum(o.mean() for o in out))
    assert not torch.equal(before, model.backbone.layers[0].mixer.in_proj.weight)

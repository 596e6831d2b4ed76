"""The contract of every registered backbone (``DenseBackbone``), checked on small models.

The backbones are found in the registry (every ``DenseBackbone`` subclass this package
registered), so a new one is checked as soon as it is registered: it fails here until it has
a small configuration in ``SMALL`` (see docs/contributing.md, "Add a backbone").
"""
import inspect
import re

import pytest
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

import mlla_mm  # noqa: F401  (registers the backbones)
from mlla_mm.models.backbones.base import DenseBackbone
from mlla_mm.models.layers.ssm import KERNEL_BACKENDS
from mlla_mm.registry import registered

# Small configurations, one or more per backbone: the first is the one most checks use; all
# are checked for out_channels. Keep them tiny (this file runs in a few seconds).
SMALL = {
    'MLLA': [dict(arch=dict(embed_dims=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2]))],
    'VMamba': [dict(arch=dict(embed_dims=8, depths=[1, 1, 1, 1]))],
    'Vim': [dict(arch=dict(embed_dims=16, depth=4, d_state=4), pretrain_img_size=32,
                 out_indices=(0, 1, 2, 3), with_adapter=False),
            dict(arch=dict(embed_dims=16, depth=2, d_state=4), pretrain_img_size=32,
                 out_indices=(1, )),
            dict(arch=dict(embed_dims=16, depth=4, d_state=4), patch_size=8, patch_stride=4,
                 pretrain_img_size=32, out_indices=(0, 1, 2, 3))],
    'MambaOut': [dict(arch=dict(dims=[8, 16, 16, 24], depths=[1, 1, 1, 1]))],
    'DemystifyNet': [dict(arch=dict(embed_dims=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2])),
                     dict(arch=dict(embed_dims=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2]),
                          design=dict(preset='mlla', forget_gate=True,
                                      pos_encodings=('ape', 'cpe', 'rope')))],
    # Backbones of branches merged later (unused until they are registered here).
    'HRVMamba': [dict(arch=dict(stage1_channels=8, channels=[16, 16, 32, 16],
                                num_modules=(1, 1, 1), num_blocks=1))],
    'MHSVMamba': [dict(arch=dict(embed_dims=8, depths=[1, 1, 1, 1], heads=('C', 'S')))],
    # outputs: the decoder's four maps (strides 32..4) and the x4 expansion (stride 1)
    'VMUNet': [dict(arch=dict(embed_dims=8, depths=[1, 1, 1, 1], decoder_depths=[1, 1, 1, 1],
                              heads=('C', 'S')), out_indices=(0, 1, 2, 3, 4))],
}
IMAGE = (2, 3, 36, 44)
# Backbones whose map i (default out_indices of the first configuration) is the output of
# stage i in frozen_stages' numbering.
STAGE_MAPS = {'MLLA', 'VMamba', 'Vim', 'MambaOut', 'DemystifyNet'}


pytestmark = pytest.mark.usefixtures('one_torch_thread')  # tests/conftest.py


def _backbones():
    classes = {cls.__name__: cls for cls in registered('MODELS')
               if isinstance(cls, type) and issubclass(cls, DenseBackbone)}
    return [classes[name] for name in sorted(classes)]


BACKBONES = _backbones()


def _small(cls, variant=0, **overrides):
    if cls.__name__ not in SMALL:
        pytest.fail(f'{cls.__name__} is a registered DenseBackbone without a small '
                    'configuration: add one to SMALL in this file (test_backbone_contract.py)')
    kwargs = dict(SMALL[cls.__name__][variant], drop_path_rate=0.0)
    kwargs.update(overrides)
    return cls(**kwargs)


def _images(in_channels=3, seed=0):
    shape = (IMAGE[0], in_channels) + IMAGE[2:]
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_every_family_is_checked():
    names = {cls.__name__ for cls in BACKBONES}
    assert {'MLLA', 'VMamba', 'Vim', 'MambaOut', 'DemystifyNet'} <= names


@pytest.mark.parametrize('cls', BACKBONES, ids=lambda c: c.__name__)
def test_arch_presets_aliases_and_dicts(cls):
    assert cls.arch_zoo and cls.essential_keys, 'arch_zoo and essential_keys are the contract'
    for name in cls.arch_zoo:
        settings = cls.resolve_arch(name)
        assert set(cls.essential_keys) <= set(settings), name
        assert cls.resolve_arch(name.upper()) == settings
        assert cls.resolve_arch(dict(preset=name)) == settings
    with pytest.raises(ValueError) as err:
        cls.resolve_arch('no-such-arch')
    for name in cls.arch_zoo:            # the error lists every valid name
        assert repr(name) in str(err.value)
    some = sorted(cls.arch_zoo)[0]
    custom = {k: v for k, v in cls.resolve_arch(some).items() if k in cls.essential_keys}
    missing = cls.essential_keys[0]
    with pytest.raises(ValueError, match=f"missing.*'{missing}'"):
        cls.resolve_arch({k: v for k, v in custom.items() if k != missing})
    with pytest.raises(ValueError, match=r"unknown arch keys \['no_such_key'\]"):
        cls.resolve_arch(dict(custom, no_such_key=1))


@pytest.mark.parametrize('cls', BACKBONES, ids=lambda c: c.__name__)
def test_out_channels_are_the_returned_channels(cls):
    for variant in range(len(SMALL.get(cls.__name__, [None]))):
        model = _small(cls, variant).eval()
        n = len(model.num_features)
        index_sets = [model.out_indices, (-1, )]
        if variant == 0:  # the others may restrict out_indices (Vim's adapter: 1 or 4)
            index_sets.append((n - 1, 0))
        for out_indices in index_sets:
            model = _small(cls, variant, out_indices=out_indices).eval()
            assert all(0 <= i < n for i in model.out_indices), model.out_indices
            with torch.no_grad():
                outs = model(_images())
            assert isinstance(outs, tuple)
            assert [o.shape[1] for o in outs] == model.out_channels, (variant, out_indices)
            assert all(o.dim() == 4 and o.shape[0] == IMAGE[0] for o in outs)


def _frozen_names(model):
    return {name for name, p in model.named_parameters() if not p.requires_grad}


def _declared_names(model, frozen_stages):
    """Parameters of what ``frozen_stages`` says it freezes: the stem, then stages 0..k-1."""
    parts = model._stem_parts() if frozen_stages >= 0 else []
    for i in range(frozen_stages):
        parts = parts + model._stage_parts(i)
    ids = set()
    for part in parts:
        if isinstance(part, nn.Parameter):
            ids.add(id(part))
        elif part is not None:
            ids.update(id(p) for p in part.parameters())
    return {name for name, p in model.named_parameters() if id(p) in ids}


@pytest.mark.parametrize('cls', BACKBONES, ids=lambda c: c.__name__)
def test_frozen_stages_freeze_the_stem_and_the_first_stages(cls):
    n = _small(cls).num_stages
    previous = set()
    for frozen_stages in range(-1, n + 1):
        model = _small(cls, frozen_stages=frozen_stages)
        assert _frozen_names(model) == _declared_names(model, frozen_stages), \
            'frozen from construction on: the stem and stages 0..frozen_stages-1'
        assert model.train() is model
        frozen = _frozen_names(model)
        assert frozen == _declared_names(model, frozen_stages)
        assert frozen > previous or frozen_stages == -1, \
            f'frozen_stages={frozen_stages} freezes nothing more'
        previous = frozen
        # frozen layers stay in eval mode through train()
        for name, module in model.named_modules():
            params = list(module.parameters(recurse=False))
            if name and params and all(not p.requires_grad for p in params):
                assert not module.training, name
        outs = model(_images())
        if cls.__name__ in STAGE_MAPS:   # map i = stage i: frozen stages give no gradient
            assert [o.requires_grad for o in outs] == [i >= frozen_stages for i in range(n)]
        if any(o.requires_grad for o in outs):
            sum(o.sum() for o in outs if o.requires_grad).backward()
            for name, param in model.named_parameters():
                assert param.grad is None or param.requires_grad, name
    with pytest.raises(ValueError, match='frozen_stages'):
        _small(cls, frozen_stages=n + 1)
    with pytest.raises(ValueError, match='frozen_stages'):
        _small(cls, frozen_stages=-2)


@pytest.mark.parametrize('cls', BACKBONES, ids=lambda c: c.__name__)
@pytest.mark.parametrize('norm_eval', [False, True])
def test_norm_eval_and_train_returns_self(cls, norm_eval):
    model = _small(cls, norm_eval=norm_eval)
    # a BatchNorm somewhere, so norm_eval has something to do in every backbone
    model.add_module('_probe_bn', nn.BatchNorm2d(4))
    assert model.train() is model
    for name, module in model.named_modules():
        if isinstance(module, _BatchNorm):
            assert module.training != norm_eval, name
        elif not name.startswith('_probe'):
            assert module.training, name
    assert all(p.requires_grad for p in model.parameters())
    assert model.eval() is model and not any(m.training for m in model.modules())


@pytest.mark.parametrize('cls', BACKBONES, ids=lambda c: c.__name__)
def test_pretrained_init_cfg(cls, tmp_path):
    source = _small(cls).eval()
    path = tmp_path / 'own.pth'
    torch.save({'state_dict': source.state_dict()}, path)
    loaded = _small(cls, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    loaded.init_weights()
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    missing = tmp_path / 'missing.pth'
    with pytest.raises(FileNotFoundError, match="missing.pth.*init_cfg=None"):
        _small(cls, init_cfg=dict(type='Pretrained', checkpoint=str(missing))).init_weights()
    with pytest.raises(ValueError, match="needs a 'checkpoint'"):
        _small(cls, init_cfg=dict(type='Pretrained')).init_weights()


@pytest.mark.parametrize('cls', BACKBONES, ids=lambda c: c.__name__)
def test_images_in_channels_and_bad_inputs(cls):
    gray = _small(cls, in_channels=1).eval()
    assert gray.in_channels == 1
    with torch.no_grad():
        assert len(gray(_images(in_channels=1))) == len(gray.out_channels)
    model = _small(cls).eval()
    name = cls.__name__
    with pytest.raises(ValueError, match=rf"{name} expects images of shape \(B, 3, H, W\).*"
                                         r"in_channels=1"):
        model(_images(in_channels=1))
    with pytest.raises(ValueError, match=r'\(B, 3, H, W\), got \(3, 36, 44\)'):
        model(_images()[0])
    with pytest.raises(ValueError, match='empty batch'):
        model(_images()[:0])


@pytest.mark.parametrize('cls', BACKBONES, ids=lambda c: c.__name__)
def test_with_cp_same_outputs_and_grads(cls):
    if 'with_cp' not in inspect.signature(cls).parameters:
        pytest.skip(f'{cls.__name__} has no with_cp')
    plain = _small(cls)
    checkpointed = _small(cls, with_cp=True)
    checkpointed.load_state_dict(plain.state_dict())
    results = []
    for model in (plain, checkpointed):
        outs = model(_images())
        loss = sum((o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum() for o in outs)
        grads = torch.autograd.grad(loss, list(model.parameters()), allow_unused=True)
        results.append((outs, grads))
    for a, b in zip(results[0][0], results[1][0]):
        torch.testing.assert_close(a, b)
    for a, b in zip(results[0][1], results[1][1]):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('cls', BACKBONES, ids=lambda c: c.__name__)
def test_kernel_backend_is_checked_with_the_valid_names(cls):
    if 'kernel_backend' not in inspect.signature(cls).parameters:
        pytest.skip(f'{cls.__name__} runs no scan')
    with pytest.raises(ValueError, match='kernel_backend must be one of') as err:
        _small(cls, kernel_backend='cuda')
    for name in KERNEL_BACKENDS:
        assert repr(name) in str(err.value)


@pytest.mark.parametrize('cls', BACKBONES, ids=lambda c: c.__name__)
def test_every_argument_is_documented(cls):
    """Each argument starts an entry of the class docstring's Args (``name:``,
    ``name (type):`` or ``a, name, b (type):``)."""
    doc = inspect.getdoc(cls)
    undocumented = [
        name for name in inspect.signature(cls).parameters
        if not re.search(rf'^\s+(\w+, )*{name}(, \w+)*( \([^)]*\))?:', doc, re.M)]
    assert not undocumented, f'{cls.__name__} docstring lacks {undocumented}'

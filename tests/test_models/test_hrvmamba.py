"""HRVMamba backbone: presets and official key layouts, DVSS block, any input size, freezing,
checkpointing, official numerics, loading official files.

``tests/data/hrvmamba_golden.pt`` comes from upstream's code (zhanghao5201/HRVMamba commit
7222bc4) run on CPU in fp32. Upstream cannot run as shipped (CUDA-only DCNv4, triton, timm,
mmcv, its own mmpose), so it was run with:

* ``import DCNv4`` answered by upstream's own ``DCNv4_op/DCNv4/modules/dcnv4.py`` with two
  patches: its ``DCNv4Function`` (the CUDA op) replaced by a line-by-line torch port of
  ``forward_kernel_dcn`` in ``dcnv4_im2col_cuda.cuh`` (softmax off, corner rules of
  ``ms_deform_attn_im2col_bilinear``), and ``forward`` taking HRVMamba's 4-D ``(N, H, W, C)``
  input with its true H, W (the published module unpacks ``N, L, C`` and assumes a square
  map); for case ``seg_small`` the module was built with ``without_pointwise=True``;
* mmcv's ``build_conv_layer``/``build_norm_layer``/``ConvModule`` as plain ``nn.Conv2d``/
  ``nn.BatchNorm2d`` (SyncBN too) with mmcv's module names; timm's ``DropPath`` as identity
  (eval); ``mmpose.registry``/``mmseg.registry``/``get_root_logger`` as mmengine stand-ins;
  fvcore and einops as empty names (imported, unused). Scan and cross-scan: upstream's own
  torch fallbacks (no CUDA extension, CPU tensors).

Weights are not stored: every tensor of upstream's state dict (key ``i`` of shape ``s``) is
:func:`golden_tensor` (sines, scaled per kind: 1/sqrt(fan-in) weights, norm scales near 1,
positive running variances, dt biases near -4), and inputs are :func:`golden_input`. The file
holds upstream's key lists (names and shapes, zlib-packed) and its outputs for

* ``pose_tiny``: ``HRVmamba`` of ``cocofinal/td-hm_hrvmamba_tiny_8xb32-210e_coco-256x192.py``
  (DCNv4 as coded: with ``value_proj``/``output_proj``; stage 4 single-scale), input 2x3x64x96;
* ``seg_small``: ``Backbone_HRVMamba`` of ``semantic_segmentation/tools/hrvmamba.py`` (neck,
  ``outnorm0..3``, fuse terms resized to the target size) with c1 16, widths 16-80-32-16
  (the 80-wide branch has Base's ``offset_mask_dw``), modules 1-2-1, DCNv4 without the
  projections, input 1x3x40x72 (not a multiple of 32); its outputs and its neck's outputs
  (before the outnorms, captured with a forward hook);
* ``seg_base_keys`` / ``pose_base_keys``: the key layouts of the ADE20K Base wrapper (DCNv4 as
  coded) and of the pose Base model without the projections (the published layout).
"""
import math
import os
import zlib

import pytest
import torch
from torch import nn

import mlla_mm  # noqa: F401  (registers the models)
from mlla_mm.models.backbones.hrvmamba import DSS2D, HRVMamba, HRVMambaBlock
from mlla_mm.models.layers.dcnv4 import DCNv4
from mlla_mm.utils.checkpoint import CheckpointError

GOLDEN = os.path.join(os.path.dirname(__file__), '..', 'data', 'hrvmamba_golden.pt')
SMALL = dict(stage1_channels=8, channels=[16, 16, 32, 16], num_modules=(1, 1, 1), num_blocks=1)


pytestmark = pytest.mark.usefixtures('one_torch_thread')  # tests/conftest.py


@pytest.fixture(scope='module')
def golden():
    return torch.load(GOLDEN, weights_only=True)


def unpack_keys(packed: torch.Tensor):
    lines = zlib.decompress(bytes(packed.numpy())).decode().split('\n')
    return [(k, tuple(int(v) for v in s.split(',') if v))
            for k, s in (line.split('\t') for line in lines)]


def golden_tensor(name: str, shape: tuple, index: int) -> torch.Tensor:
    """The golden file's weights: a deterministic function of key name, shape and position."""
    if name.endswith('num_batches_tracked'):
        return torch.zeros(shape, dtype=torch.long)
    n = math.prod(shape)
    t = torch.sin(torch.arange(n, dtype=torch.float64) * 0.7071 + index * 1.618 + 0.3).view(shape)
    if name.endswith('running_var'):
        t = 1 + 0.5 * t.abs()
    elif name.endswith('running_mean'):
        t = 0.1 * t
    elif name.endswith('A_logs'):
        t = 0.5 * t
    elif name.endswith('Ds'):
        t = 1 + 0.1 * t
    elif name.endswith('dt_projs_bias'):
        t = t - 4
    elif len(shape) == 1:
        t = 1 + 0.2 * t if name.endswith('weight') else 0.1 * t
    else:
        fan_in = (shape[-1] if name.endswith(('x_proj_weight', 'dt_projs_weight'))
                  else math.prod(shape[1:]))
        t = t * math.sqrt(2.0 / fan_in)
    return t.float()


def golden_input(shape: tuple, phase: float) -> torch.Tensor:
    n = math.prod(shape)
    return torch.cos(torch.arange(n, dtype=torch.float64) * 0.37 + phase).view(shape).float()


def golden_state_dict(packed_keys) -> dict:
    return {k: golden_tensor(k, s, i) for i, (k, s) in enumerate(unpack_keys(packed_keys))}


def small_model(**kwargs):
    kwargs.setdefault('drop_path_rate', 0.0)
    return HRVMamba(arch=kwargs.pop('arch', SMALL), **kwargs)


def rel_err(a, b):
    return float((a - b).abs().max() / b.abs().max())


def layout(model):
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


# -- presets and official layouts --------------------------------------------------
# Backbone parameters of the pose models (stage 4 single-scale, no output norms), counted on
# upstream's HRVmamba: without the DCNv4 projections (the published 2M / 8M / 47M) and as coded.
PRESETS = [
    # arch, alias, c1, channels, params published layout, params as coded
    ('tiny', 't', 32, [16, 32, 64, 128], 2_151_008, 3_215_776),
    ('small', 's', 64, [32, 64, 128, 256], 8_033_840, 12_285_104),
]


@pytest.mark.parametrize('arch,alias,c1,channels,published,as_coded', PRESETS)
def test_presets_match_upstream(arch, alias, c1, channels, published, as_coded):
    model = HRVMamba(arch, out_indices=(0,), with_out_norms=False)
    assert model.channels == channels and model.arch_settings['stage1_channels'] == c1
    assert HRVMamba.arch_zoo[alias] == HRVMamba.arch_zoo[arch]
    assert sum(p.numel() for p in model.parameters()) == published
    # as coded, each DCNv4 adds value_proj (D x D + D) and output_proj (D x D, no bias)
    dcns = [m for m in model.modules() if isinstance(m, DCNv4)]
    assert published + sum(2 * m.channels ** 2 + m.channels for m in dcns) == as_coded
    # 44 DVSS blocks: 2 per branch in 1 + 4 + 2 modules of 2, 3, 4 branches
    blocks = [m for m in model.modules() if isinstance(m, HRVMambaBlock)]
    assert len(blocks) == 44
    op = blocks[0].op
    assert isinstance(op, DSS2D) and isinstance(op.conv2d, DCNv4)
    c0 = channels[0]   # D = 2C, R = dt_rank = C / 16 DCNv4 groups of 32 channels, N = 1
    assert (op.d_inner, op.dt_rank, op.d_state, op.directions) == (2 * c0, c0 // 16, 1, 4)
    assert op.conv2d.group == c0 // 16 and op.conv2d.dw_kernel_size is None


def test_base_is_upstreams_ade20k_and_pose_layouts(golden):
    """One Base build (neck, DCNv4 as coded) against upstream's ADE20K wrapper; without the
    neck, its outnorms, the DCNv4 projections and stage 4's multi-scale fuse rows it is
    upstream's published pose Base (47.1M)."""
    model = HRVMamba(dict(preset='base', dcn_pointwise=True), with_neck=True)
    assert model.out_channels == [128, 256, 512, 2048]
    ours = layout(model)
    assert sorted(ours) == sorted(unpack_keys(golden['seg_base_keys']))
    pose_only = [(k, s) for k, s in ours
                 if not k.startswith(('neck.', 'outnorm'))
                 and '.conv2d.value_proj.' not in k and '.conv2d.output_proj.' not in k
                 and not k.startswith(tuple(f'stage4.1.fuse_layers.{i}.' for i in (1, 2, 3)))]
    assert sorted(pose_only) == sorted(unpack_keys(golden['pose_base_keys']))
    params = dict(model.named_parameters())
    assert sum(params[k].numel() for k, _ in pose_only if k in params) == 47_099_616
    # every Base branch (80/160/320/640 channels) gets the depthwise offset conv, 5-40 groups
    dcns = [m for m in model.modules() if isinstance(m, DCNv4)]
    assert all(m.dw_kernel_size == 3 for m in dcns)
    assert sorted({m.group for m in dcns}) == [5, 10, 20, 40]


# -- numerics against upstream -------------------------------------------------------
def _run_golden(model, case):
    state_dict = golden_state_dict(case['keys'])
    result = model.load_state_dict(model.convert_checkpoint(state_dict), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    model.eval()
    with torch.no_grad():
        return model(golden_input(tuple(case['input_shape']), case['input_phase']))


def test_golden_pose_tiny_as_coded(golden):
    case = golden['pose_tiny']
    model = HRVMamba(dict(preset='tiny', dcn_pointwise=True), out_indices=(0,),
                     with_out_norms=False, drop_path_rate=0.0)
    outs = _run_golden(model, case)
    assert len(outs) == len(case['outputs']) == 1
    assert outs[0].shape == case['outputs'][0].shape == (2, 16, 16, 24)
    assert rel_err(outs[0], case['outputs'][0]) < 1e-5


def test_golden_segmentation_wrapper_odd_size(golden):
    case = golden['seg_small']
    model = HRVMamba(dict(stage1_channels=16, channels=[16, 80, 32, 16], num_modules=(1, 2, 1)),
                     with_neck=True, drop_path_rate=0.0)
    captured = []
    model.neck.register_forward_hook(lambda module, args, outputs: captured.extend(outputs))
    outs = _run_golden(model, case)
    assert [tuple(o.shape) for o in outs] == [tuple(o.shape) for o in case['outputs']] == [
        (1, 128, 10, 18), (1, 256, 5, 9), (1, 512, 3, 5), (1, 2048, 2, 3)]
    for neck_out, ref in zip(captured, case['neck_outputs']):
        assert rel_err(neck_out, ref) < 1e-5
    # after the outnorms: LayerNorm divides by each pixel's std over channels, 5x smaller than
    # the median at the map's border here, so fp32 noise grows by up to that much
    for out, ref in zip(outs, case['outputs']):
        assert rel_err(out, ref) < 5e-5


# -- the block -------------------------------------------------------------------------
@pytest.mark.parametrize('dcn_pointwise,channels', [(False, 16), (True, 80)])
def test_dvss_block_shapes_names_and_grads(dcn_pointwise, channels):
    block = HRVMambaBlock(channels, drop_path=0.0, dcn_pointwise=dcn_pointwise,
                          dcn_offset_dw=channels % 80 == 0)
    keys = set(block.state_dict())
    for name in ('norm0.weight', 'conv2d.3.weight', 'conv2d.0.bias', 'norm.weight',
                 'op.in_proj.weight', 'op.conv2d.offset_mask.weight', 'op.x_proj_weight',
                 'op.dt_projs_weight', 'op.dt_projs_bias', 'op.A_logs', 'op.Ds',
                 'op.out_norm.weight', 'op.out_proj.weight', 'norm2.weight', 'mlp.fc1.weight',
                 'mlp.fc2.bias'):
        assert name in keys, name
    assert ('op.conv2d.value_proj.weight' in keys) == dcn_pointwise
    assert ('op.conv2d.offset_mask_dw.weight' in keys) == (channels % 80 == 0)
    # ESInB: 4 channel groups (the remainder to group 0) with kernels 3/5/7/9
    assert [tuple(c.weight.shape) for c in block.conv2d] == [
        (channels // 4, 1, k, k) for k in (3, 5, 7, 9)]
    assert block.mlp.fc1.out_features == 2 * channels
    with torch.no_grad():   # non-zero offsets and masks, so every DCN parameter matters
        block.op.conv2d.offset_mask.weight.normal_(std=0.1)
        block.op.conv2d.offset_mask.bias.normal_(std=0.5)
    x = torch.randn(2, channels, 9, 7, requires_grad=True)
    y = block(x)
    assert y.shape == x.shape
    y.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    no_grad = [n for n, p in block.named_parameters() if p.grad is None or not p.grad.any()]
    assert no_grad == []


def test_esinb_is_grouped_convs_and_a_channel_shuffle():
    block = HRVMambaBlock(8, dcn_pointwise=False).eval()
    x = torch.randn(1, 8, 5, 6)
    normed = block.norm0(x)
    parts = [conv(normed[:, 2 * g:2 * g + 2]) for g, conv in enumerate(block.conv2d)]
    # shuffle of 4 groups of 2: output channel c = 4*(c_in % 2) + c_in // 2 ... i.e. g0c0, g1c0, ..
    shuffled = torch.stack(parts, dim=2).flatten(1, 2)
    torch.testing.assert_close(block._esinb(x), nn.functional.gelu(shuffled))


def test_esinb_drop_path_only_when_asked():
    torch.manual_seed(0)
    block = HRVMambaBlock(8, drop_path=0.999, esinb_drop_path=False).train()
    x = torch.randn(3, 8, 4, 4)
    # the SSM and MLP branches are (almost surely) dropped, the ESInB branch is not
    expected = x + block._esinb(x)
    torch.testing.assert_close(block(x), expected)


# -- the backbone at any size ------------------------------------------------------------
@pytest.mark.parametrize('out_indices', [(0,), (1,), (2,), (3,), (0, 1, 2, 3), (1, 3)])
def test_any_input_size_and_out_indices(out_indices):
    model = small_model(out_indices=out_indices).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 250, 333))
    sizes = [(63, 84), (32, 42), (16, 21), (8, 11)]
    assert [tuple(o.shape) for o in outs] == [(1, SMALL['channels'][i]) + sizes[i]
                                              for i in out_indices]
    assert model.out_channels == [SMALL['channels'][i] for i in out_indices]
    assert all(o.is_contiguous() and torch.isfinite(o).all() for o in outs)
    # the pose layout: stage 4's last module fuses only into branch 0
    assert len(model.stage4[-1].fuse_layers) == (1 if out_indices == (0,) else 4)
    assert all(hasattr(model, f'outnorm{i}') for i in out_indices)


def test_neck_outputs_and_norms():
    model = small_model(with_neck=True, with_out_norms=True).eval()
    with torch.no_grad():
        outs = model(torch.randn(2, 3, 65, 97))
    assert [tuple(o.shape) for o in outs] == [(2, 128, 17, 25), (2, 256, 9, 13), (2, 512, 5, 7),
                                              (2, 2048, 3, 4)]
    assert model.out_channels == [128, 256, 512, 2048]
    # each map is LayerNormed over channels
    for out in outs:
        torch.testing.assert_close(out.mean(1), torch.zeros_like(out.mean(1)), atol=1e-4,
                                   rtol=0)
    plain = small_model(with_out_norms=False)
    assert not any(k.startswith('outnorm') for k in plain.state_dict())


def test_stochastic_depth_is_upstreams_per_branch_rule():
    model = HRVMamba('tiny', drop_path_rate=0.13)
    rates = torch.linspace(0, 0.13, 14).tolist()   # 2 + 8 + 4 block slots
    expected = {2: [rates[0:2]], 3: [rates[2 + 2 * m:4 + 2 * m] for m in range(4)],
                4: [rates[10:12], rates[12:14]]}
    for stage, per_module in expected.items():
        for module, module_rates in zip(getattr(model, f'stage{stage}'), per_module):
            for branch in module.branches:   # every branch: block k gets rate k of the module
                got = [block.drop_path.drop_prob for block in branch]
                assert got == pytest.approx(module_rates)


def test_backward_reaches_every_used_parameter():
    model = small_model(drop_path_rate=0.1, with_neck=True)
    outs = model(torch.randn(2, 3, 64, 48))
    sum(o.square().mean() for o in outs).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []


def test_with_cp_gives_the_same_values_and_grads():
    torch.manual_seed(1)
    plain = small_model(drop_path_rate=0.0)
    checkpointed = small_model(drop_path_rate=0.0, with_cp=True)
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 48, 64)
    grads = []
    for model in (plain, checkpointed):
        model.train()
        sum(o.sum() for o in model(x)).backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('frozen_stages', [0, 1, 2, 4])
def test_frozen_stages(frozen_stages):
    model = small_model(frozen_stages=frozen_stages, with_neck=True).train()
    frozen = ['conv1', 'bn1', 'conv2', 'bn2', 'layer1', 'transition1', 'stage2', 'transition2',
              'stage3', 'transition3', 'stage4'][:4 + (frozen_stages and 2 * frozen_stages)]
    for name, p in model.named_parameters():
        top = name.split('.')[0]
        assert p.requires_grad == (top not in frozen), name
    bns = [m for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)
           and n.split('.')[0] in frozen]
    assert bns and not any(m.training for m in bns)
    assert model.neck.training and model.outnorm0.weight.requires_grad


def test_norm_eval_keeps_batch_norms_in_eval():
    model = small_model(norm_eval=True).train()
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)
    assert model.stage2[0].branches[0][0].training


def test_sync_bn_from_norm_cfg():
    model = small_model(norm_cfg=dict(type='SyncBN', requires_grad=True))
    assert isinstance(model.bn1, nn.SyncBatchNorm)
    assert isinstance(model.stage2[0].fuse_layers[0][1][1], nn.SyncBatchNorm)
    frozen_bn = small_model(norm_cfg=dict(type='BN', requires_grad=False))
    assert not frozen_bn.bn1.weight.requires_grad


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"unknown arch 'huge'.*'base'"):
        HRVMamba('huge')
    with pytest.raises(ValueError, match='norm_cfg type must be one of'):
        small_model(norm_cfg=dict(type='GN', num_groups=2))
    with pytest.raises(ValueError, match='multiple of 4'):
        small_model(arch=dict(SMALL, channels=[18, 16, 32, 16]))
    with pytest.raises(ValueError, match='out_indices'):
        small_model(out_indices=(4,))
    with pytest.raises(ValueError, match='frozen_stages'):
        small_model(frozen_stages=5)
    with pytest.raises(ValueError, match=r'expects images of shape \(B, 3, H, W\)'):
        small_model()(torch.randn(1, 1, 32, 32))
    with pytest.raises(ValueError, match=r'empty batch \(0, 3, 32, 32\).*skip the forward'):
        small_model()(torch.zeros(0, 3, 32, 32))
    with pytest.raises(ValueError, match='unknown arch keys'):
        small_model(arch=dict(SMALL, depth=3))


# -- official files ---------------------------------------------------------------------
def _save(tmp_path, name, payload):
    path = str(tmp_path / name)
    torch.save(payload, path)
    return path


def _pretrained(path, **kwargs):
    model = small_model(init_cfg=dict(type='Pretrained', checkpoint=path), **kwargs)
    model.init_weights()
    return model


def test_loads_a_pose_file(tmp_path):
    """mmengine checkpoint of the pose estimator: state_dict with backbone.* and head.*."""
    source = small_model(out_indices=(0,), with_out_norms=False)
    state = {f'backbone.{k}': v for k, v in source.state_dict().items()}
    state['head.final_layer.weight'] = torch.randn(17, 16, 1, 1)
    path = _save(tmp_path, 'pose.pth', dict(meta={}, state_dict=state))
    model = _pretrained(path, out_indices=(0,), with_out_norms=False)
    for k, v in source.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v)
    # the same file into the four-output build: the fuse rows into branches 1-3 start fresh
    with pytest.raises(CheckpointError, match='missing from the file'):
        _pretrained(path)


def test_loads_an_imagenet_file_into_the_segmentation_build(tmp_path):
    """Swin-style trainer file: model (+ model_ema), the classifier head.* dropped, outnorms
    fresh; and the same file into a pose build (neck and multi-scale fuse rows dropped)."""
    source = small_model(with_neck=True, with_out_norms=False)
    state = dict(source.state_dict())
    state['head.weight'], state['head.bias'] = torch.randn(1000, 2048), torch.randn(1000)
    # Linear2d weights saved as 1x1 convs load too
    state['stage2.0.branches.0.0.mlp.fc1.weight'] = state[
        'stage2.0.branches.0.0.mlp.fc1.weight'][:, :, None, None]
    path = _save(tmp_path, 'in1k.pth', dict(model=state, model_ema=state, epoch=300))
    seg = _pretrained(path, with_neck=True)
    torch.testing.assert_close(seg.neck.final_layer.conv.weight,
                               source.neck.final_layer.conv.weight)
    pose = _pretrained(path, out_indices=(0,), with_out_norms=False)
    torch.testing.assert_close(pose.stage4[0].branches[3][0].op.A_logs,
                               source.stage4[0].branches[3][0].op.A_logs)
    # a file with only the EMA weights
    ema = _pretrained(_save(tmp_path, 'ema.pth', dict(model_ema=state)), with_neck=True)
    torch.testing.assert_close(ema.conv1.weight, source.conv1.weight)


def test_loads_an_mmseg_file_with_neck_and_outnorms(tmp_path):
    source = small_model(with_neck=True)
    state = {f'backbone.{k}': v for k, v in source.state_dict().items()}
    state['decode_head.conv_seg.weight'] = torch.randn(150, 512, 1, 1)
    path = _save(tmp_path, 'ade.pth', dict(state_dict=state))
    model = _pretrained(path, with_neck=True)
    torch.testing.assert_close(model.outnorm3.weight, source.outnorm3.weight)


def test_dcn_layout_mismatch_says_which_setting_loads_it(tmp_path):
    coded = small_model(arch=dict(SMALL, dcn_pointwise=True))
    path = _save(tmp_path, 'coded.pth', coded.state_dict())
    with pytest.raises(CheckpointError, match=r'with value_proj/output_proj.*dcn_pointwise=True'):
        _pretrained(path)
    model = _pretrained(path, arch=dict(SMALL, dcn_pointwise=True))
    torch.testing.assert_close(model.stage2[0].branches[0][0].op.conv2d.value_proj.weight,
                               coded.stage2[0].branches[0][0].op.conv2d.value_proj.weight)
    published = _save(tmp_path, 'published.pth', small_model().state_dict())
    with pytest.raises(CheckpointError, match=r'without value_proj.*dcn_pointwise=False'):
        _pretrained(published, arch=dict(SMALL, dcn_pointwise=True))


def test_files_of_other_models_are_errors(tmp_path):
    other = small_model(arch=dict(SMALL, num_blocks=2))   # same names up to block 1
    path = _save(tmp_path, 'other.pth', other.state_dict())
    with pytest.raises(CheckpointError, match='unused'):
        _pretrained(path)
    state = dict(small_model().state_dict())
    state['stage2.0.branches.0.0.cpe1.weight'] = torch.randn(16, 1, 3, 3)
    path = _save(tmp_path, 'lpu.pth', state)
    with pytest.raises(CheckpointError, match='HRVmamba_se_lpu'):
        _pretrained(path)


def test_registered_everywhere():
    from mmengine.registry import MODELS
    model = MODELS.build(dict(type='HRVMamba', arch=SMALL, out_indices=(0,)))
    assert isinstance(model, HRVMamba)
    for scope in ('mmdet', 'mmseg', 'mmpretrain', 'mmpose'):
        try:
            registry = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
        except ImportError:
            continue
        assert registry.get('HRVMamba') is HRVMamba, scope


def test_dss2d_flops_count_the_dcn_and_the_scan():
    """The DCNv4 aggregation is one probe node of 4 k^2 MACs per output value (36 HWD, the
    authors' DCNv4Function_jit); the scan 9 L D N + L D over the 4 routes."""
    from mlla_mm.analysis.flops import count_complexity
    op = DSS2D(32, dcn_offset_dw=True)                  # D = 64, 2 groups, N = 1
    result = count_complexity(op, torch.randn(1, 32, 10, 7))
    pixels, d = 70, 64
    assert result['by_operator']['PythonOp._DCNFlopsProbe'] == 36 * pixels * d
    assert result['by_operator']['PythonOp._ScanFlopsProbe'] == 4 * (9 * pixels * d + pixels * d)


def test_flops_match_the_paper():
    """HRVMamba-T's pose backbone at 256x192 with the authors' counting conventions: within
    2 % of the paper's 2M / 1.1 GFLOPs (S, B and 384x288: docs/hrvmamba.md, get_flops.py
    --published)."""
    from mlla_mm.analysis.flops import count_complexity
    model = HRVMamba('tiny', out_indices=(0,), with_out_norms=False)
    result = count_complexity(model, torch.randn(1, 3, 256, 192))
    assert result['scans'] == 44
    assert result['flops'] / 1e9 == pytest.approx(1.1, rel=0.02)
    assert result['params'] == 2_151_008

"""The unified Mamba / linear-attention mixer and the paper's ablation backbone.

The paper's equations (Han et al., NeurIPS 2024, eqs. 2-4, 10-12) written out independently
here -- selective scans by the naive kernel, attention as explicit matrices -- and compared
with :class:`UnifiedLinearAttention` / :class:`DemystifyNet` (forward and gradients, fp32).
"""
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from mlla_kernels import available_backends, selective_scan
from mlla_mm.models.backbones.demystify import (DemystifyNet, LinearAttentionBlock,
                                                MambaBlock)
from mlla_mm.models.backbones.mlla import MLLABlock
from mlla_mm.models.layers import (DESIGN_PRESETS, PAPER_ROWS, UnifiedDesign,
                                   UnifiedLinearAttention, apply_rope_2d, rope_2d_tables)
from mlla_mm.models.layers.unified_attention import NORM_EPS, scan_routes

SMALL = dict(embed_dims=16, depths=[1, 1, 2, 1], num_heads=[1, 2, 2, 4])
HW = (3, 5)
TOL = 1e-5


pytestmark = pytest.mark.usefixtures('one_torch_thread')  # tests/conftest.py


def _tokens(dims, batch=2, hw=HW, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, hw[0] * hw[1], dims, generator=g)


def _mixer(design, dims=8, heads=2, d_state=4, backend='torch', **overrides):
    if overrides:
        design = dataclasses.replace(UnifiedDesign.build(design), **overrides)
    torch.manual_seed(0)
    mixer = UnifiedLinearAttention(dims, heads, design, d_state=d_state,
                                   kernel_backend=backend)
    with torch.no_grad():   # non-trivial values everywhere (biases, D, A)
        for p in mixer.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return mixer


def _rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


def _check_forward_and_grads(mixer, reference, x, reference_module=None):
    """``mixer(x)`` == ``reference(x)`` and d/d(x, every parameter) agree, within TOL.

    ``reference`` uses the mixer's own parameters, or those of ``reference_module`` (a twin).
    """
    x = x.clone().requires_grad_(True)
    weight = torch.randn(x.shape[0], x.shape[1], mixer.dims)
    grads = []
    for fn, module in ((lambda: mixer(x, HW), mixer),
                       (lambda: reference(x), reference_module or mixer)):
        out = fn()
        grads.append((out, torch.autograd.grad((out * weight).sum(),
                                               [x] + list(module.parameters()),
                                               allow_unused=True)))
    (out, g_out), (ref, g_ref) = grads
    assert _rel_err(out, ref) <= TOL, 'forward'
    for name, a, b in zip(['x'] + [n for n, _ in mixer.named_parameters()], g_out, g_ref):
        assert (a is None) == (b is None), name
        if a is not None:
            assert _rel_err(a, b) <= TOL, f'grad of {name}: {_rel_err(a, b):.2e}'


def _heads(t, groups):
    """(B, L, G*c) -> (B, G, L, c)."""
    b, n, c = t.shape
    return t.reshape(b, n, groups, c // groups).transpose(1, 2)


def _merge(t):
    b, g, n, c = t.shape
    return t.transpose(1, 2).reshape(b, n, g * c)


# -- designs and presets ------------------------------------------------------------------
EXPECTED_CHANGES = {
    'linear_attention': {},
    'input_gate': {'input_gate': (False, True)},
    'forget_gate': {'forget_gate': (False, True)},
    'shortcut': {'shortcut': (False, True)},
    'no_normalization': {'normalize': (True, False)},
    'single_head': {'multi_head': (True, False)},
    'block_design_all': {'block': ('transformer', 'mamba')},
    'block_design_sub': {'block': ('transformer', 'mamba_mlp')},
    'ape': {'pos_encodings': ((), ('ape', ))},
    'lepe': {'pos_encodings': ((), ('lepe', ))},
    'cpe': {'pos_encodings': ((), ('cpe', ))},
    'rope': {'pos_encodings': ((), ('rope', ))},
    'mamba': {'input_gate': (False, True), 'forget_gate': (False, True),
              'shortcut': (False, True), 'normalize': (True, False),
              'multi_head': (True, False), 'block': ('transformer', 'mamba'),
              'feature_map': ('elu', 'identity')},
    'mlla': {'block': ('transformer', 'mamba_mlp'),
             'pos_encodings': ((), ('lepe', 'cpe', 'rope'))},
}


@pytest.mark.parametrize('name', sorted(DESIGN_PRESETS))
def test_each_preset_changes_exactly_its_designs(name):
    baseline = DESIGN_PRESETS['linear_attention']
    assert DESIGN_PRESETS[name].changes_from(baseline) == EXPECTED_CHANGES[name]
    assert name in PAPER_ROWS


def test_presets_cover_the_paper_tables():
    assert set(EXPECTED_CHANGES) == set(DESIGN_PRESETS)
    published = {name: row.top1 for name, row in PAPER_ROWS.items()}
    assert published['linear_attention'] == 77.6 and published['forget_gate'] == 78.4
    assert published['no_normalization'] == 72.4 and published['block_design_sub'] == 80.9
    assert published['cpe'] == 81.7


def test_design_from_names_and_dicts():
    assert UnifiedDesign.build('Baseline') is DESIGN_PRESETS['linear_attention']
    assert UnifiedDesign.build('MILA') is DESIGN_PRESETS['mlla']
    custom = UnifiedDesign.build(dict(preset='mlla', forget_gate=True, scan_order='cross',
                                      pos_encodings=['rope', 'lepe']))
    assert custom.changes_from(DESIGN_PRESETS['mlla']) == {
        'forget_gate': (False, True), 'scan_order': ('row', 'cross'),
        'pos_encodings': (('lepe', 'cpe', 'rope'), ('lepe', 'rope'))}
    assert UnifiedDesign.build(dict(shortcut=True)) == DESIGN_PRESETS['shortcut']
    assert UnifiedDesign(pos_encodings=('rope', 'lepe')).pos_encodings == ('lepe', 'rope')


def test_design_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"unknown design 'mamba2'.*'forget_gate'.*'mlla'"):
        UnifiedDesign.build('mamba2')
    with pytest.raises(ValueError, match=r"unknown design fields \['gate'\].*'input_gate'"):
        UnifiedDesign.build(dict(gate=True))
    with pytest.raises(TypeError, match='forget_gate must be True or False'):
        UnifiedDesign(forget_gate=1)
    with pytest.raises(ValueError, match="block must be one of .*'mamba_mlp'"):
        UnifiedDesign(block='sub')
    with pytest.raises(ValueError, match=r"unknown \['alibi'\]"):
        UnifiedDesign(pos_encodings=('alibi', ))
    with pytest.raises(ValueError, match="feature_map='identity' needs normalize=False"):
        UnifiedDesign(feature_map='identity')
    with pytest.raises(ValueError, match='divisible by 4'):
        UnifiedLinearAttention(8, 2, dict(preset='rope', multi_head=False), d_state=6)
    with pytest.raises(ValueError, match='do not split into 3 heads'):
        UnifiedLinearAttention(8, 3)
    with pytest.raises(ValueError, match='kernel_backend'):
        UnifiedLinearAttention(8, 2, kernel_backend='cuda')


# -- the two ends of the unified formulation ----------------------------------------------
def test_mamba_preset_is_the_selective_scan():
    """All six of Mamba's designs: y = selective_scan(u=x, Δ, A, B=K, C=Q, D) (eq. 10)."""
    mixer = _mixer('mamba', dims=8, d_state=4)
    assert mixer.v is None and mixer.groups == 1 and mixer.key_dims == 4

    def mamba(x):
        bc = x @ mixer.qk.weight.t() + mixer.qk.bias           # plain projections (no φ)
        C, B = bc[..., :4], bc[..., 4:]
        delta = mixer.dt_down(x) @ mixer.dt_proj.weight.t()
        return selective_scan(x.transpose(1, 2), delta.transpose(1, 2),
                              -torch.exp(mixer.A_log), B.transpose(1, 2), C.transpose(1, 2),
                              D=mixer.D, delta_bias=mixer.dt_proj.bias, delta_softplus=True,
                              backend='naive').transpose(1, 2)

    _check_forward_and_grads(mixer, mamba, _tokens(8))


def test_linear_attention_preset_is_multi_head_normalized_linear_attention():
    """Linear attention's six choices: y_i = Σ_j (Q_i K_jᵀ / Σ_k Q_i K_kᵀ) V_j per head (eq. 2)."""
    mixer = _mixer('linear_attention', dims=8, heads=2)
    assert mixer.groups == 2 and mixer.key_dims == 8

    def linear_attention(x):
        q, k = (F.elu(t) + 1 for t in (x @ mixer.qk.weight.t() + mixer.qk.bias).chunk(2, -1))
        v = mixer.v(x)
        attn = _heads(q, 2) @ _heads(k, 2).transpose(-2, -1)          # (B, h, L, L)
        attn = attn / attn.sum(-1, keepdim=True)
        return _merge(attn @ _heads(v, 2))

    _check_forward_and_grads(mixer, linear_attention, _tokens(8))


# -- one switch at a time -----------------------------------------------------------------
def _same_weights(mixer, donor):
    """Copy the donor's shared parameters into mixer (the switch's own ones stay)."""
    missing, _ = mixer.load_state_dict(donor.state_dict(), strict=False)
    return missing


def test_shortcut_adds_d_times_value_and_nothing_else():
    base, mixer = _mixer('linear_attention'), _mixer('shortcut')
    assert _same_weights(mixer, base) == ['D']
    x = _tokens(8)
    with torch.no_grad():
        torch.testing.assert_close(mixer(x, HW) - base(x, HW), mixer.D * base.v(x),
                                   atol=1e-6, rtol=0)


def test_input_gate_scales_the_values_by_delta():
    base, mixer = _mixer('linear_attention'), _mixer('input_gate')
    assert sorted(_same_weights(mixer, base)) == ['dt_down.weight', 'dt_proj.bias',
                                                  'dt_proj.weight']
    x = _tokens(8)
    with torch.no_grad():
        delta = F.softplus(mixer.dt_down(x) @ mixer.dt_proj.weight.t() + mixer.dt_proj.bias)
        assert (delta > 0).all()
        q, k = mixer.queries_keys(x)
        expected = base.parallel(q, k, base.v(x) * delta, q, k)
        torch.testing.assert_close(mixer(x, HW), expected, atol=1e-6, rtol=0)
        # and that is linear attention of the gated values
        attn = _heads(q, 2) @ _heads(k, 2).transpose(-2, -1)
        explicit = _merge((attn / attn.sum(-1, keepdim=True)) @ _heads(base.v(x) * delta, 2))
        assert _rel_err(mixer(x, HW), explicit) <= TOL


def test_no_normalization_drops_exactly_the_denominator():
    base, mixer = _mixer('linear_attention'), _mixer('no_normalization')
    assert _same_weights(mixer, base) == []
    x = _tokens(8)
    with torch.no_grad():
        q, k = (_heads(t, 2) for t in base.queries_keys(x))
        denominator = q @ k.mean(-2, keepdim=True).transpose(-2, -1) + NORM_EPS
        expected = _merge(_heads(mixer(x, HW), 2) / denominator)
        assert _rel_err(base(x, HW), expected) <= TOL
        # Q · mean_j(K_jᵀ V_j): the attention weights no longer sum to 1
        explicit = _merge(q @ k.transpose(-2, -1) @ _heads(base.v(x), 2) / x.shape[1])
        assert _rel_err(mixer(x, HW), explicit) <= TOL


def test_single_head_has_one_head_of_d_state_keys():
    mixer = _mixer('single_head', dims=8, heads=2, d_state=4)
    assert mixer.groups == 1 and mixer.qk.weight.shape == (8, 8)   # 2 x d_state queries/keys
    x = _tokens(8)
    with torch.no_grad():
        q, k = mixer.queries_keys(x)
        attn = q @ k.transpose(-2, -1)
        expected = (attn / attn.sum(-1, keepdim=True)) @ mixer.v(x)
        assert _rel_err(mixer(x, HW), expected) <= TOL


def _decayed_attention(q, k, delta, A, num_routes_masks, normalize, input_gate, v):
    """Eq. (11) as attention, in float64: w[i, j, c] = Σ_n Q_in K_jn exp(A_cn Σ_{t=j+1..i} Δ_tc)
    over each route's causal prefix; y = Σ w G V [/ Σ w]."""
    q, k, delta, A, v = (t.double() for t in (q, k, delta, A, v))
    b, n, _ = v.shape
    num = torch.zeros_like(v)
    den = torch.zeros_like(v)
    gate = delta if input_gate else torch.ones_like(delta)
    for order in num_routes_masks:
        position = torch.empty(n, dtype=torch.long)
        position[order] = torch.arange(n)
        cum = torch.zeros(b, n + 1, v.shape[2], dtype=torch.float64)
        cum[:, 1:] = delta[:, order].cumsum(1)     # cum[:, s] = Σ of Δ over route steps < s
        for i in range(n):
            for j in range(n):
                if position[j] > position[i]:
                    continue
                span = cum[:, position[i] + 1] - cum[:, position[j] + 1]     # (B, C)
                decay = torch.exp(span[:, :, None] * A[None])               # (B, C, N)
                w = (q[:, i, None, :] * k[:, j, None, :] * decay).sum(-1)   # (B, C)
                num[:, i] += w * gate[:, j] * v[:, j]
                den[:, i] += w
    return num / (den + NORM_EPS * n) if normalize else num / len(num_routes_masks)


@pytest.mark.parametrize('order', ['row', 'row_bidirectional', 'cross'])
@pytest.mark.parametrize('normalize,input_gate', [(True, False), (False, True)])
def test_forget_gate_is_the_decayed_attention_of_eq_11(order, normalize, input_gate):
    """The recurrent form == eq. (11) unrolled into an attention matrix with decays."""
    mixer = _mixer('forget_gate', dims=8, heads=1, scan_order=order, normalize=normalize,
                   input_gate=input_gate)
    x = _tokens(8, batch=1)
    with torch.no_grad():
        q, k = mixer.queries_keys(x)
        delta = mixer.gate(x).clamp_min(1e-6)
        routes = scan_routes(order, HW)
        orders = [torch.arange(x.shape[1])] if routes is None else list(routes)
        expected = _decayed_attention(q, k, delta, -torch.exp(mixer.A_log), orders,
                                      normalize, input_gate, mixer.v(x))
        assert _rel_err(mixer(x, HW).double(), expected) <= TOL


def test_recurrent_form_with_forget_gate_one_is_causal_then_parallel_linear_attention():
    """exp(ΔA) = 1: the recurrence is causal linear attention (eq. 3/4), and its last token
    has seen every token, so it equals the parallel form (eq. 2) of the forget-gate-off mixer."""
    base, mixer = _mixer('linear_attention'), _mixer('forget_gate')
    _same_weights(mixer, base)
    with torch.no_grad():
        mixer.A_log.fill_(-200.0)                       # A = -exp(-200): no decay
    x = _tokens(8)
    with torch.no_grad():
        q, k = (_heads(t, 2) for t in mixer.queries_keys(x))
        attn = (q @ k.transpose(-2, -1)).tril()         # causal: j <= i
        n = x.shape[1]
        causal = _merge(attn @ _heads(mixer.v(x), 2)
                        / (attn.sum(-1, keepdim=True) + NORM_EPS * n))
        recurrent = mixer(x, HW)
        assert _rel_err(recurrent, causal) <= TOL
        assert _rel_err(recurrent[:, -1], base(x, HW)[:, -1]) <= TOL


def test_rope_rotates_numerator_queries_keys_as_mlla():
    from mlla_mm.models.layers import MLLALinearAttention
    mixer = _mixer(dict(preset='rope', pos_encodings=('rope', 'lepe'), block='mamba_mlp'),
                   dims=8, heads=2)
    official = MLLALinearAttention(8, 2)
    official.load_state_dict(mixer.state_dict())       # qk.*, lepe.*: the same names
    x = _tokens(8)
    with torch.no_grad():
        assert _rel_err(mixer(x, HW), official(x, HW)) <= TOL
        tables = rope_2d_tables(HW, 8)
        q, k = mixer.queries_keys(x)
        no_rope = mixer.parallel(q, k, x, q, k)
        rotated = mixer.parallel(q, k, x, apply_rope_2d(q, tables), apply_rope_2d(k, tables))
        lepe = mixer.lepe(x.transpose(1, 2).reshape(2, 8, *HW)).flatten(2).transpose(1, 2)
        assert _rel_err(mixer(x, HW), rotated + lepe) <= TOL
        assert _rel_err(no_rope, rotated) > 1e-3      # RoPE does change the output


# -- blocks, backends ---------------------------------------------------------------------
def test_mlla_design_block_is_the_official_mlla_block():
    """Block sub. + LePE + CPE + RoPE == MLLA's block: its weights load and outputs match."""
    ours = MambaBlock(16, 2, DESIGN_PRESETS['mlla']).eval()
    official = MLLABlock(16, 2).eval()
    with torch.no_grad():
        for p in official.parameters():
            p.normal_(std=0.2)
    ours.load_state_dict(official.state_dict(), strict=True)
    x = _tokens(16, hw=(4, 6))
    tables = rope_2d_tables((4, 6), 16)
    with torch.no_grad():
        assert _rel_err(ours(x, (4, 6), tables), official(x, (4, 6), tables)) <= TOL


def test_block_designs_build_the_named_blocks():
    transformer = LinearAttentionBlock(16, 2, DESIGN_PRESETS['cpe'])
    assert transformer.cpe1 is not None and transformer.attn.v is not None
    block_all = MambaBlock(16, 2, DESIGN_PRESETS['block_design_all'])
    assert block_all.in_proj.out_features == 32 and not hasattr(block_all, 'mlp')
    assert block_all.attn.v is None and block_all.cpe1 is None
    block_sub = MambaBlock(16, 2, DESIGN_PRESETS['block_design_sub'])
    assert block_sub.in_proj.out_features == 16 and hasattr(block_sub, 'mlp')
    for block in (transformer, block_all, block_sub):
        out = block(_tokens(16), HW)
        assert out.shape == (2, 15, 16) and torch.isfinite(out).all()


FORGET_GATE_DESIGNS = {
    'forget_gate': 'forget_gate',
    'mamba': 'mamba',
    'mlla+forget_gate+cross': dict(preset='mlla', forget_gate=True, input_gate=True,
                                   scan_order='cross'),
}


@pytest.mark.parametrize('backend', [b for b in available_backends('cpu') if b != 'naive'])
@pytest.mark.parametrize('design', sorted(FORGET_GATE_DESIGNS))
def test_forget_gate_designs_run_on_every_kernel_backend(backend, design):
    spec = FORGET_GATE_DESIGNS[design]
    mixer = _mixer(spec, dims=8, heads=2, d_state=4, backend=backend)
    reference = _mixer(spec, dims=8, heads=2, d_state=4, backend='naive')
    _check_forward_and_grads(mixer, lambda x: reference(x, HW), _tokens(8, batch=1),
                             reference_module=reference)


# -- the backbone -------------------------------------------------------------------------
@pytest.mark.parametrize('name', sorted(DESIGN_PRESETS))
def test_backbone_every_preset_gives_four_nchw_maps(name):
    model = DemystifyNet(arch=SMALL, design=name, drop_path_rate=0.1)
    x = torch.randn(1, 3, 45, 62)
    outs = model(x)
    assert [tuple(o.shape) for o in outs] == [(1, 16, 12, 16), (1, 32, 6, 8), (1, 64, 3, 4),
                                             (1, 128, 2, 2)]
    assert all(o.is_contiguous() and torch.isfinite(o).all() for o in outs)
    sum(o.mean() for o in outs).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad), name


def test_backbone_swin_t_shape_and_parameter_counts():
    """Params of the paper's rows (backbone + 768->1000 head), in M: ours vs Tab. 1/2."""
    head = 768 * 1000 + 1000
    counts = {name: (sum(p.numel() for p in DemystifyNet(design=name, out_indices=(3, ))
                         .parameters()) + head) / 1e6
              for name in ('linear_attention', 'forget_gate', 'single_head', 'block_design_sub')}
    for name, count in counts.items():
        assert abs(count - PAPER_ROWS[name].params_m) < 0.75, (name, count)
    model = DemystifyNet(design='mamba', out_indices=(3, ))
    assert model.num_features == [96, 192, 384, 768] and model.depths == [2, 2, 6, 2]


def test_backbone_arch_and_design_errors():
    with pytest.raises(ValueError, match=r"unknown arch 'small'.*'tiny'"):
        DemystifyNet(arch='small')
    with pytest.raises(ValueError, match=r"unknown design 'forget'.*'forget_gate'"):
        DemystifyNet(arch=SMALL, design='forget')
    with pytest.raises(ValueError, match='out_indices'):
        DemystifyNet(arch=SMALL, out_indices=(4, ))
    with pytest.raises(ValueError, match='frozen_stages'):
        DemystifyNet(arch=SMALL, frozen_stages=5)
    with pytest.raises(ValueError, match='images of shape'):
        DemystifyNet(arch=SMALL)(torch.randn(1, 1, 32, 32))


def test_backbone_frozen_stages_checkpointing_and_pretrained_prefix(tmp_path):
    design = dict(preset='mlla', forget_gate=True, pos_encodings=('ape', 'cpe', 'rope'))
    model = DemystifyNet(arch=SMALL, design=design, frozen_stages=2, drop_path_rate=0.0)
    assert model.train() is model
    assert not model.patch_embed.training and not model.absolute_pos_embed.requires_grad
    assert all(not p.requires_grad for p in model.layers[1].parameters())
    assert all(p.requires_grad for p in model.layers[2].parameters())
    x = torch.randn(1, 3, 40, 36)
    checkpointed = DemystifyNet(arch=SMALL, design=design, with_cp=True, drop_path_rate=0.0)
    checkpointed.load_state_dict(model.state_dict())
    torch.testing.assert_close(checkpointed(x)[3], model(x)[3])
    # a classifier checkpoint (mmpretrain: 'backbone.' keys) initialises the dense backbone
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in model.state_dict().items()}},
               tmp_path / 'cls.pth')
    loaded = DemystifyNet(arch=SMALL, design=design, init_cfg=dict(
        type='Pretrained', checkpoint=str(tmp_path / 'cls.pth'), prefix='backbone.'))
    loaded.init_weights()
    model.eval(), loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)[0], model(x)[0])


def test_ape_is_resized_to_the_actual_grid():
    model = DemystifyNet(arch=SMALL, design='ape', pretrain_img_size=32)
    assert model.absolute_pos_embed.shape == (1, 16, 8, 8)
    assert model(torch.randn(1, 3, 50, 70))[0].shape[-2:] == (13, 18)
    assert math.isclose(model.absolute_pos_embed.std().item(), 0.02, rel_tol=0.5)

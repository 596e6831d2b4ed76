"""recompute_in_backward: same values and gradients, fewer activations kept for backward."""
import torch
import torch.nn.functional as F
from mlla_kernels import available_backends

from mlla_mm.models.layers.bimamba import BiMambaMixer
from mlla_mm.models.layers.common import recompute_in_backward


def saved_bytes(fn):
    """Bytes autograd keeps for backward while running fn()."""
    total = []

    def pack(t):
        total.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, sum(total)


def test_same_values_and_gradients_and_less_kept():
    weight = torch.randn(8, 1, 3, 3, requires_grad=True)
    x = torch.randn(2, 8, 16, 16, requires_grad=True)

    def conv_silu(t):
        return F.silu(F.conv2d(t, weight, padding=1, groups=8))

    plain, plain_bytes = saved_bytes(lambda: conv_silu(x))
    recomputed, recomputed_bytes = saved_bytes(lambda: recompute_in_backward(conv_silu, x))
    assert torch.equal(plain, recomputed)
    grads = [torch.autograd.grad(y.square().sum(), (x, weight)) for y in (plain, recomputed)]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert recomputed_bytes <= plain_bytes - x.numel() * 4   # the conv output is not kept


def test_plain_call_without_grad():
    x = torch.randn(3)
    with torch.no_grad():
        assert torch.equal(recompute_in_backward(torch.sin, x), torch.sin(x))


def test_vim_mixer_keeps_less_for_backward(monkeypatch):
    """The bidirectional mixer no longer keeps its two conv outputs for backward: PyTorch's
    convs run under recompute_in_backward (GPU, traced, kernel_backend='torch'), and the fused
    CPU conv (numba) keeps no more than that."""
    from mlla_mm.models.layers import bimamba
    torch.manual_seed(0)
    mixer = BiMambaMixer(16, d_state=4, kernel_backend='torch')
    tokens = torch.randn(1, 40, 16, requires_grad=True)
    _, kept = saved_bytes(lambda: mixer(tokens))
    if 'numba' in available_backends():
        fused = BiMambaMixer(16, d_state=4, kernel_backend='numba')
        fused.load_state_dict(mixer.state_dict())
        _, kept_fused = saved_bytes(lambda: fused(tokens))
        assert kept_fused <= kept
    monkeypatch.setattr(bimamba, 'recompute_in_backward', lambda fn, *args: fn(*args))
    _, kept_plain = saved_bytes(lambda: mixer(tokens))
    conv_output = (40 + mixer.d_conv - 1) * mixer.d_inner * 4
    assert kept_plain - kept >= 2 * conv_output


def test_mlla_patch_merging_keeps_no_wide_map():
    """MLLA's patch merging recomputes its 8C-wide map (1x1 conv + ReLU, the strided depthwise
    conv's input) in the backward; the values and every gradient are those of plain calls."""
    from mlla_mm.models.backbones.mlla import MLLAPatchMerging
    torch.manual_seed(0)
    merge = MLLAPatchMerging(8).train()
    x = torch.randn(2, 6 * 6, 8, requires_grad=True)

    def run():
        shapes = []

        def pack(t):
            shapes.append(tuple(t.shape))
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out, hw = merge(x, (6, 6))
        return out, shapes
    out, shapes = run()
    assert (2, 64, 6, 6) not in shapes, shapes
    grads = torch.autograd.grad(out.square().sum(), [x, *merge.parameters()])

    def plain(t):   # the same convs without the recompute
        m = t.transpose(1, 2).reshape(2, 8, 6, 6)
        return merge.conv(m).flatten(2).transpose(1, 2)
    expected = plain(x)
    ref = torch.autograd.grad(expected.square().sum(), [x, *merge.parameters()])
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    for a, b in zip(grads, ref):
        torch.testing.assert_close(a, b)

"""DCNv4 in plain torch: the grid_sample and torchvision twins against the naive reference
(values and gradients, float64), the depthwise-conv special case, the module's layouts."""
import pytest
import torch
import torch.nn.functional as F

from mlla_mm.models.layers.dcnv4 import DCN_BACKENDS, DCNv4, dcnv4, dcnv4_naive

FAST = [b for b in DCN_BACKENDS if b not in ('auto', 'naive')]   # numba, grid_sample, torchvision

# (batch, channels, group, height, width, kernel, stride, pad, dilation, offset_scale)
GEOMETRIES = [
    (2, 8, 2, 5, 7, 3, 1, 1, 1, 1.0),     # HRVMamba's case, odd sizes, groups > 1
    (1, 6, 3, 9, 4, 3, 2, 1, 1, 1.0),     # stride 2
    (2, 4, 1, 6, 5, 3, 1, 2, 2, 0.7),     # dilation, offset scale < 1
    (1, 4, 2, 7, 7, 5, 1, 2, 1, 1.3),     # 5x5 kernel, offset scale > 1
    (1, 3, 1, 1, 1, 3, 1, 1, 1, 1.0),     # a 1x1 map: every neighbour outside
]


def _inputs(batch, channels, group, height, width, kernel, stride, pad, dilation,
            offset_scale, device='cpu', dtype=torch.float64):
    out_h = (height + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1
    out_w = (width + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1
    padded = -(-group * kernel * kernel * 3 // 8) * 8
    value = torch.randn(batch, channels, height, width, dtype=dtype, device=device)
    # offsets of a few pixels (many points land outside the map) and masks of either sign
    offset_mask = 2 * torch.randn(batch, padded, out_h, out_w, dtype=dtype, device=device)
    return value.requires_grad_(), offset_mask.requires_grad_()


@pytest.mark.parametrize('backend', FAST)
@pytest.mark.parametrize('geometry', GEOMETRIES)
def test_fast_backends_match_naive_forward_and_backward(backend, geometry):
    value, offset_mask = _inputs(*geometry)
    group, kernel, stride, pad, dilation, scale = (geometry[2],) + geometry[5:]
    args = (group, kernel, stride, pad, dilation, scale)
    ref = dcnv4_naive(value, offset_mask, *args)
    out = dcnv4(value, offset_mask, *args, backend=backend)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    grad = torch.randn_like(ref)
    ref_grads = torch.autograd.grad(ref, (value, offset_mask), grad)
    grads = torch.autograd.grad(out, (value, offset_mask), grad)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-9)
    # the padding channels after 3*G*k*k are ignored
    assert ref_grads[1][:, group * kernel * kernel * 3:].abs().max() == 0


def test_naive_reads_the_layout_of_the_cuda_kernel():
    """One group, one output pixel: p = col*3 + row, (dx, dy) pairs, then raw masks."""
    value = torch.arange(25, dtype=torch.float64).view(1, 1, 5, 5)   # value = 5*y + x
    offset_mask = torch.zeros(1, 32, 5, 5, dtype=torch.float64)
    # point p = 5 is column i = 1, row j = 2: sample at (x, y) = (w + 0 + dx, h + 1 + dy)
    offset_mask[0, 2 * 5, 2, 2] = 0.5      # dx
    offset_mask[0, 2 * 5 + 1, 2, 2] = -0.25  # dy
    offset_mask[0, 18 + 5, 2, 2] = -2.0    # its mask, used raw
    out = dcnv4_naive(value, offset_mask, group=1)
    x, y = 2 + 0 + 0.5, 2 + 1 - 0.25
    assert out[0, 0, 2, 2] == pytest.approx(-2.0 * (5 * y + x))
    assert out.abs().sum() == pytest.approx(abs(out[0, 0, 2, 2]))


@pytest.mark.parametrize('backend', DCN_BACKENDS)
def test_zero_offsets_are_a_depthwise_conv(backend):
    """With zero offsets and per-group masks, DCNv4 is a depthwise conv whose kernel is the
    mask (transposed: the point index runs over columns first)."""
    batch, channels, group, height, width = 2, 6, 3, 7, 5
    value = torch.randn(batch, channels, height, width, dtype=torch.float64)
    masks = torch.randn(group, 9, dtype=torch.float64)
    offset_mask = torch.zeros(batch, 88, height, width, dtype=torch.float64)
    for g in range(group):
        offset_mask[:, g * 27 + 18:g * 27 + 27] = masks[g].view(1, 9, 1, 1)
    out = dcnv4(value, offset_mask, group, backend=backend)
    kernel = masks.view(group, 3, 3).transpose(1, 2)          # [g, row, col] = mask[col*3 + row]
    weight = kernel.repeat_interleave(channels // group, 0).unsqueeze(1)
    torch.testing.assert_close(out, F.conv2d(value, weight, padding=1, groups=channels))


@pytest.mark.parametrize('with_pointwise,dw_kernel_size,num_keys',
                         [(True, None, 5), (False, None, 2), (False, 3, 4), (True, 3, 7)])
def test_module_keys_are_upstreams(with_pointwise, dw_kernel_size, num_keys):
    module = DCNv4(160, group=5, dw_kernel_size=dw_kernel_size, with_pointwise=with_pointwise,
                   output_bias=False)
    shapes = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    assert len(shapes) == num_keys
    assert shapes['offset_mask.weight'] == (136, 160)    # ceil(3*5*9 / 8) * 8 = 136
    assert shapes['offset_mask.bias'] == (136,)
    if dw_kernel_size:
        assert shapes['offset_mask_dw.weight'] == (160, 1, 3, 3)
    if with_pointwise:
        assert shapes['value_proj.weight'] == shapes['output_proj.weight'] == (160, 160)
        assert 'output_proj.bias' not in shapes


@pytest.mark.parametrize('with_pointwise', [True, False])
def test_module_matches_its_parts_and_starts_at_zero(with_pointwise):
    module = DCNv4(32, group=2, dw_kernel_size=3, with_pointwise=with_pointwise).double()
    x = torch.randn(2, 32, 9, 6, dtype=torch.float64)
    # upstream's init: zero offset/mask projection, so the aggregation is zero
    out = module(x)
    bias = module.output_proj.bias.view(1, -1, 1, 1) if with_pointwise else 0
    torch.testing.assert_close(out, torch.zeros_like(out) + bias)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(std=0.2)
    value = module.value_proj(x) if with_pointwise else x
    offset_mask = module.offset_mask(module.offset_mask_dw(x))   # from the input, not value
    expected = dcnv4_naive(value, offset_mask, 2)
    if with_pointwise:
        expected = module.output_proj(expected)
    torch.testing.assert_close(module(x), expected)
    module(x).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


def test_bad_input_is_named():
    with pytest.raises(ValueError, match='divisible by group'):
        DCNv4(30, group=4)
    with pytest.raises(ValueError, match='backend must be one of'):
        DCNv4(32, group=2, backend='cuda')
    value = torch.randn(1, 8, 5, 5)
    with pytest.raises(ValueError, match=r'offset_mask must be \(N=1, >=54, 5, 5\)'):
        dcnv4(value, torch.zeros(1, 40, 5, 5), group=2)
    with pytest.raises(ValueError, match='do not split into 3 groups'):
        dcnv4(value, torch.zeros(1, 88, 5, 5), group=3)


@pytest.mark.parametrize('threads', [1, 3])
def test_numba_float32_channels_last_any_thread_count(threads):
    """The fp32 kernels against the float64 reference; channels-last inputs (how HRVMamba's
    SS2D hands them over) and non-contiguous ones; the thread count changes nothing."""
    value, offset_mask = _inputs(*GEOMETRIES[0])
    ref = dcnv4_naive(value, offset_mask, 2)
    ref_grads = torch.autograd.grad(ref.sum(), (value, offset_mask))
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        v32 = value.detach().float().contiguous(memory_format=torch.channels_last)
        # a third memory layout: W-major (transposed) offsets
        om32 = offset_mask.detach().float().transpose(2, 3).contiguous().transpose(2, 3)
        v32.requires_grad_()
        om32.requires_grad_()
        out = dcnv4(v32, om32, 2, backend='numba')
        grads = torch.autograd.grad(out.sum(), (v32, om32))
    finally:
        torch.set_num_threads(previous)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-5)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g.double(), r, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize('backend', [b for b in DCN_BACKENDS if b != 'numba'])
def test_cuda_tensors_match_cpu(backend):
    geometry = GEOMETRIES[0]
    value, offset_mask = _inputs(*geometry, dtype=torch.float32)
    ref = dcnv4(value, offset_mask, geometry[2], backend='naive')
    ref_grads = torch.autograd.grad(ref.sum(), (value, offset_mask))
    value_cuda = value.detach().cuda().requires_grad_()
    offset_mask_cuda = offset_mask.detach().cuda().requires_grad_()
    out = dcnv4(value_cuda, offset_mask_cuda, geometry[2], backend=backend)
    assert out.is_cuda
    grads = torch.autograd.grad(out.sum(), (value_cuda, offset_mask_cuda))
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-4, atol=1e-4)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g.cpu(), r, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize('geometry', [GEOMETRIES[1], GEOMETRIES[2]], ids=['stride2', 'dilation'])
def test_numba_operator_passes_opcheck(geometry):
    """``torch.ops.mlla_mm.dcnv4_numba``: schema, fake vs real (shapes, dtypes, strides),
    registered autograd, AOT dispatch with dynamic shapes (what compile/export rely on)."""
    pytest.importorskip('numba')
    from mlla_mm.models.layers.dcnv4_numba import dcnv4_numba_op
    value, offset_mask = _inputs(*geometry)
    group, kernel, stride, pad, dilation, scale = geometry[2], *geometry[5:]
    torch.library.opcheck(dcnv4_numba_op,
                          (value, offset_mask, group, kernel, stride, pad, dilation, scale))

"""On a CUDA GPU only: VMamba, Vim and HRVMamba with the compiled Triton kernels against the torch
backend, end to end (outputs and every parameter's gradient); HRVMamba (Triton scan, DCNv4 by
grid_sample) on CUDA against the CPU build (numba scan and DCNv4). Run by tools/gpu_check.sh."""
import importlib.util

import pytest
import torch

pytest.importorskip('mmengine')
import mlla_mm  # noqa: F401,E402  (registers the models)
from mlla_mm.models.backbones.hrvmamba import HRVMamba  # noqa: E402
from mlla_mm.models.backbones.vim import Vim  # noqa: E402
from mlla_mm.models.backbones.vmamba import VMamba  # noqa: E402

pytestmark = [pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU'),
              pytest.mark.skipif(importlib.util.find_spec('triton') is None,
                                 reason='needs triton')]


def _hrvmamba(backend, dcn_backend='auto'):
    # four branches (the 80-wide one has Base's depthwise offset conv, 5 DCNv4 groups), one
    # block each; offsets and masks away from their zero init so every DCNv4 path is used.
    # norm_eval: a training-mode BatchNorm after a 1x1 conv (fuse layers) would leave the
    # bias of the BatchNorm before it a noise-only gradient
    model = HRVMamba(arch=dict(stage1_channels=8, channels=[16, 32, 80, 16], num_modules=(1, 1, 1),
                               num_blocks=1), drop_path_rate=0.0, norm_eval=True,
                     kernel_backend=backend, dcn_backend=dcn_backend)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if '.conv2d.offset_mask.' in name:
                p.normal_(std=0.1 if name.endswith('weight') else 0.5)
    return model


BUILDERS = {
    # VMamba v2 (d_state 1) and v0-style (d_state 16) small models, odd input
    'vmamba-n1': (lambda backend: VMamba(arch=dict(embed_dims=32, depths=[1, 1, 2, 1], d_state=1),
                                         drop_path_rate=0.0, kernel_backend=backend),
                  (2, 3, 75, 103)),
    'vmamba-n16': (lambda backend: VMamba(arch=dict(embed_dims=32, depths=[1, 1, 1, 1],
                                                    d_state=16),
                                          drop_path_rate=0.0, kernel_backend=backend),
                   (2, 3, 64, 64)),
    # no pyramid: its conv biases feed BatchNorm, zero gradients up to noise (no scale)
    'vim': (lambda backend: Vim(arch=dict(embed_dims=64, depth=2, d_state=16),
                                pretrain_img_size=64, out_indices=(0, 1), with_adapter=False,
                                kernel_backend=backend),
            (2, 3, 96, 80)),
    # HRVMamba: 4 routes, d_state 1, DCNv4 (grid_sample on CUDA), odd input
    'hrvmamba': (_hrvmamba, (2, 3, 75, 103)),
}


@pytest.mark.parametrize('name', sorted(BUILDERS))
def test_triton_matches_torch_backend_on_cuda(name):
    build, shape = BUILDERS[name]
    torch.manual_seed(0)
    models = {b: build(b).cuda().train() for b in ('torch', 'triton')}
    models['triton'].load_state_dict(models['torch'].state_dict())
    image = torch.randn(*shape, device='cuda')
    outs, grads = {}, {}
    for backend, model in models.items():
        feats = model(image)
        weights = [torch.randn(f.shape, device='cuda', generator=torch.Generator('cuda')
                               .manual_seed(i)) for i, f in enumerate(feats)]
        sum((f * w).sum() for f, w in zip(feats, weights)).backward()
        outs[backend] = [f.detach() for f in feats]
        grads[backend] = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    for ours, ref in zip(outs['triton'], outs['torch']):
        err = ((ours - ref).abs().max() / ref.abs().max()).item()
        assert err < 1e-3, f'{name}: output rel err {err:.2e}'
    assert grads['triton'].keys() == grads['torch'].keys()
    for key, ref in grads['torch'].items():
        err = ((grads['triton'][key] - ref).abs().max() / ref.abs().max().clamp_min(1e-12)).item()
        assert err < 5e-3, f'{name}: gradient of {key}: rel err {err:.2e}'


def test_hrvmamba_on_cuda_matches_cpu():
    """The whole HRVMamba on CUDA tensors ('auto': Triton scan, grid_sample DCNv4) against the
    same weights on CPU ('auto': numba scan and DCNv4): outputs and the input's gradient. TF32
    off: cuDNN's default TF32 convolutions alone differ from fp32 by ~1e-3."""
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        _compare_hrvmamba_cuda_and_cpu()
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32


def _compare_hrvmamba_cuda_and_cpu():
    torch.manual_seed(0)
    cpu = _hrvmamba('auto').eval()
    gpu = _hrvmamba('auto').cuda().eval()
    gpu.load_state_dict(cpu.state_dict())
    image = torch.randn(2, 3, 75, 103)
    results = []
    for model, x in ((cpu, image.clone()), (gpu, image.cuda())):
        x.requires_grad_()
        feats = model(x)
        # random weights: each output ends in a norm over channels, so a plain sum of an output
        # has a zero gradient up to noise (the first GPU run compared that noise: rel err 1.2)
        weights = [torch.randn(f.shape, generator=torch.Generator().manual_seed(i)).to(f.device)
                   for i, f in enumerate(feats)]
        sum((f * w).sum() for f, w in zip(feats, weights)).backward()
        results.append(([f.detach().cpu() for f in feats], x.grad.cpu()))
    (cpu_feats, cpu_grad), (gpu_feats, gpu_grad) = results
    for ours, ref in zip(gpu_feats, cpu_feats):
        err = ((ours - ref).abs().max() / ref.abs().max()).item()
        assert err < 1e-3, f'output rel err {err:.2e}'
    err = ((gpu_grad - cpu_grad).abs().max() / cpu_grad.abs().max()).item()
    assert err < 5e-3, f'input gradient rel err {err:.2e}'


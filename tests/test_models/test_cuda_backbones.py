"""On a CUDA GPU only: VMamba and Vim with the compiled Triton kernels against the torch backend,
end to end (outputs and every parameter's gradient). Run by tools/gpu_check.sh."""
import importlib.util

import pytest
import torch

pytest.importorskip('mmengine')
import mlla_mm  # noqa: F401,E402  (registers the models)
from mlla_mm.models.backbones.vim import Vim  # noqa: E402
from mlla_mm.models.backbones.vmamba import VMamba  # noqa: E402

pytestmark = [pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU'),
              pytest.mark.skipif(importlib.util.find_spec('triton') is None,
                                 reason='needs triton')]

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

"""On a CUDA GPU only: torch.compile with Inductor and torch.export of the scan backbones around
the Triton operators (CPU CI compiles with aot_eager and exports on CPU: tests/e2e). A step of
its own in tools/gpu_check.sh (Inductor's compiles take minutes; kept out of the kernel tests'
time limit)."""
import pytest
import torch

from test_cuda_backbones import BUILDERS  # noqa: F401  (skips without CUDA, triton, mmengine)

pytestmark = [pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')]


@pytest.mark.parametrize('name', ['hrvmamba', 'vim', 'vmamba-n1'])
def test_inductor_compiled_backbone_matches_eager_on_cuda(name):
    """torch.compile with Inductor (the default backend; CPU CI runs aot_eager only) on CUDA:
    one graph around the Triton scan operators, outputs and every gradient equal to eager's."""
    build, shape = BUILDERS[name]
    torch.manual_seed(0)
    eager = build('triton').cuda().train()
    model = build('triton').cuda().train()
    model.load_state_dict(eager.state_dict())
    compiled = torch.compile(model, fullgraph=True)
    image = torch.randn(*shape, device='cuda')
    try:
        results = []
        for net in (compiled, eager):
            feats = net(image)
            weights = [torch.randn(f.shape, device='cuda', generator=torch.Generator('cuda')
                                   .manual_seed(i)) for i, f in enumerate(feats)]
            sum((f * w).sum() for f, w in zip(feats, weights)).backward()
            results.append([f.detach() for f in feats])
    finally:
        torch._dynamo.reset()
    for ours, ref in zip(*results):
        err = ((ours - ref).abs().max() / ref.abs().max()).item()
        assert err < 1e-3, f'{name}: output rel err {err:.2e}'
    for (key, p), q in zip(model.named_parameters(), eager.parameters()):
        if q.grad is None:
            continue
        err = ((p.grad - q.grad).abs().max() / q.grad.abs().max().clamp_min(1e-12)).item()
        assert err < 5e-3, f'{name}: gradient of {key}: rel err {err:.2e}'


@pytest.mark.parametrize('name', ['vim', 'vmamba-n1'])
def test_exported_backbone_runs_on_cuda(name):
    """torch.export on CUDA tensors: the Triton operators trace through their fake
    implementations and the exported program reproduces eager's outputs."""
    build, shape = BUILDERS[name]
    torch.manual_seed(0)
    model = build('triton').cuda().eval()
    image = torch.randn(*shape, device='cuda')
    with torch.no_grad():
        program = torch.export.export(model, (image,))
        outs, refs = program.module()(image), model(image)
    for ours, ref in zip(outs, refs):
        err = ((ours - ref).abs().max() / ref.abs().max()).item()
        assert err < 1e-4, f'{name}: output rel err {err:.2e}'

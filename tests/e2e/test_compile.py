"""torch.compile(fullgraph=True) of every backbone on CPU (small presets, tiny images).

``fullgraph=True`` fails on any graph break, so compiling is the check that each backbone --
scans included (the operators of :mod:`mlla_kernels.library`), and HRVMamba's DCNv4
(``mlla_mm::dcnv4_numba``) -- is one graph. The compiler backend is ``aot_eager``: Dynamo and
AOTAutograd (the operators' fake implementations and registered backward) without Inductor's
C++ code generation, which would take minutes on a small CPU. Outputs and parameter gradients
must equal eager's. Static shapes for every backbone (symbolic shapes cost 10-40 s of tracing
per backbone here); ``dynamic=True`` once, on DemystifyNet (the backbone whose padding
arithmetic failed to trace symbolically).
"""
import copy

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from deploy_cases import NAMES, OTHER_SIZE, SIZE, build, images, one_thread, rel  # noqa: F401

STATIC_SIZE = (32, 40)
# MLLA's fused CPU ops (mlla_kernels.linear_attention, depthwise_conv2d) are not operators: a
# compiled graph runs their torch twins, so the eager reference runs them too (the numba
# kernels agree with them to ~1e-6 in outputs, ~4e-5 in these gradients: test_linear_attention)
SAME_OPS_AS_COMPILED = {'MLLA': dict(kernel_backend='torch')}
# HRVMamba: with its BatchNorms in training mode, parameter gradients differ from eager's by
# 2e-3..5e-3 (rel): batch statistics over maps of a few pixels (its low-resolution branches)
# amplify the rounding of the compiled BatchNorm (a decomposition) against eager's kernel --
# with DCNv4 on numba or on grid_sample alike, and 0 difference once the BatchNorms use
# running statistics. So its BatchNorms are in eval mode here (as when fine-tuned with frozen
# BN); everything else trains.
FROZEN_BN = {'HRVMamba'}


@pytest.mark.parametrize('name', NAMES)
def test_backbone_compiles_to_one_graph_with_eager_values_and_gradients(name):
    eager = build(name, **SAME_OPS_AS_COMPILED.get(name, {})).train()
    if name in FROZEN_BN:
        for module in eager.modules():
            if isinstance(module, _BatchNorm):
                module.eval()
    model = copy.deepcopy(eager)
    compiled = torch.compile(model, fullgraph=True, backend='aot_eager', dynamic=False)
    x = images(STATIC_SIZE)
    try:
        outs = compiled(x)
    finally:
        torch._dynamo.reset()
    refs = eager(x)
    assert [o.shape for o in outs] == [r.shape for r in refs]
    for out, ref in zip(outs, refs):
        assert rel(out, ref) <= 1e-5
    sum((o * o).mean() for o in outs).backward()
    sum((r * r).mean() for r in refs).backward()
    for (key, p), q in zip(model.named_parameters(), eager.parameters()):
        if q.grad is None:
            assert p.grad is None, key
            continue
        assert rel(p.grad, q.grad) <= 1e-5, key


def test_dynamic_compile_runs_two_sizes_with_at_most_one_recompilation():
    """H and W traced as symbols (DemystifyNet: patch embedding and merging pad odd maps);
    the second size may recompile once (the convolutions' fake implementation guards on the
    input's size), not more."""
    model = build('DemystifyNet').eval()
    graphs = []

    def counting_aot_eager(gm, example_inputs):
        graphs.append(gm)
        from torch._dynamo.backends.debugging import aot_eager
        return aot_eager(gm, example_inputs)

    compiled = torch.compile(model, fullgraph=True, dynamic=True, backend=counting_aot_eager)
    try:
        for size in (SIZE, OTHER_SIZE):
            x = images(size)
            with torch.no_grad():
                outs, refs = compiled(x), model(x)
            assert [o.shape for o in outs] == [r.shape for r in refs]
            for out, ref in zip(outs, refs):
                assert rel(out, ref) <= 1e-5
    finally:
        torch._dynamo.reset()
    assert len(graphs) <= 2, f'{len(graphs)} compilations for two sizes'

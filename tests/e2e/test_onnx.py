"""ONNX export (``mlla_mm.deploy.onnx``, ``tools/deployment/export_onnx.py``) checked in
onnxruntime on CPU, with no custom library: the scans become an ONNX ``Scan`` over chunks
(:mod:`mlla_kernels.routed_scan.portable`).

Each backbone's small preset (tests/test_models/test_backbone_contract.py) is exported at an
odd size (every stage's map padded: the portable scan pads its chunks, patch embedding and
merging pad odd maps), VMamba's also at an even one (nothing padded), and its onnxruntime
outputs match PyTorch within 1e-4 relative (the portable scan at many more shapes:
tests/test_kernels/test_portable.py, without ONNX; every backbone at even sizes through
torch.export: test_export.py, whose graphs the ONNX exporter translates). One run of the
tool as a user runs it exports a whole UperNet demo segmentor and checks its logits. The
backbone exports skip the exporter's graph optimizer (most of a large graph's export time;
onnxruntime optimizes on load anyway); the tool's run keeps it. End-to-end suite: an export
traces the model three times (torch.export, decompositions, ONNX translation).
"""
import copy
import os.path as osp

import pytest
import torch

from deploy_cases import NAMES, build, images, one_thread, rel  # noqa: F401
from tool_runner import PY, ROOT, run_tool

pytest.importorskip('onnxruntime', reason='pip install mlla-mm[deploy]')
pytest.importorskip('onnxscript', reason='pip install mlla-mm[deploy]')

from mlla_mm.deploy.onnx import (TOLERANCE, _runner, check_onnxruntime,  # noqa: E402
                                 export_onnx)

ODD, EVEN = (37, 53), (64, 96)
# Static ONNX files, one export per size (a few seconds to ~15 s each): the even size once.
SIZES = {'VMamba': (ODD, EVEN)}
# VM-UNet's scan route attention, total * relu(std / (mean - min + 1e-5) - threshold) over the
# routes, turns rounding of the scan outputs (~2e-7) into ~1e-1 at the output of a random
# small preset: PyTorch's own float32 forward is that far from float64. There the file is
# held to float64 (the truth) and must be no less accurate than PyTorch's float32 is.
ILL_CONDITIONED = {'VMUNet'}


@pytest.mark.parametrize('name', NAMES)
def test_backbone_onnx_matches_pytorch(name, tmp_path):
    model = build(name).eval()
    for seed, size in enumerate(SIZES.get(name, (ODD, ))):
        path = str(tmp_path / f'{name}_{size[0]}x{size[1]}.onnx')
        x = images(size, seed)
        export_onnx(model, x, path, optimize=False)  # the tool's test optimizes
        if name in ILL_CONDITIONED:
            outs = _runner(path, 'onnxruntime', 1)(x.numpy())
            with torch.no_grad():
                refs32 = model(x)
                refs64 = copy.deepcopy(model).double()(x.double())
            for out, ref32, ref64 in zip(outs, refs32, refs64):
                onnx_error = rel(torch.from_numpy(out).double(), ref64)
                torch_error = rel(ref32.double(), ref64)
                assert onnx_error <= 1.5 * torch_error + TOLERANCE, (size, onnx_error,
                                                                     torch_error)
            continue
        check, = check_onnxruntime(model, path, [x], repeats=0)
        assert check.ok, (size, check.rel_diffs)
        assert check.max_rel_diff <= TOLERANCE


def test_tool_exports_upernet_logits(tmp_path):
    """A user's run: the whole UperNet MambaOut demo segmentor, logits at the input size,
    checked in onnxruntime and (reported) OpenVINO."""
    out = str(tmp_path / 'upernet.onnx')
    log = run_tool([PY, osp.join(ROOT, 'tools/deployment/export_onnx.py'),
                    osp.join(ROOT, 'configs/demo/upernet_mambaout_demo.py'), '--shape', '45', '67',
                    '--out', out, '--openvino'])
    assert 'EncoderDecoder' in log and 'logits at the input size' in log, log
    assert 'outputs: 1x8x45x67' in log, log
    assert 'max relative difference' in log and log.rstrip().endswith('OK'), log
    assert 'OpenVINO vs PyTorch: max relative difference' in log, log
    assert osp.getsize(out) > 0

"""ONNX export of the backbones and of whole models, checked in onnxruntime.

Our scans are ``mlla_kernels::*`` operators running numba or Triton code, which no ONNX
runtime has. For export the routed scan every public scan maps onto is replaced by its
portable formulation (:mod:`mlla_kernels.routed_scan.portable`: standard ops and one ``scan``
over 64-step chunks, which the exporter writes as an ONNX ``Scan``), and HRVMamba's DCNv4
operator by its ``grid_sample`` formulation (:func:`portable_operators`), so the file runs in
onnxruntime (and OpenVINO) on CPU with no custom library.

What is exported (:func:`exportable`): a backbone as it is (its tuple of maps); a segmentor
(``EncoderDecoder``, e.g. UperNet) as its logits at the input's size (test mode, no sliding
window, no argmax); a detector as backbone + neck (its tuple of maps) -- RoI heads and NMS are
post-processing that mmdeploy exports, not this module.

``onnx``/``onnxruntime`` are imported inside the functions that need them
(:func:`require_deploy`), so ``mlla_mm`` imports without them.
"""
import contextlib
import os
import time
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import torch
from torch import nn

from .wrappers import DetectorFeatures, SegmentorLogits, export_wrapper

#: maximum relative difference (max |onnx - torch| / max |torch|, per output) accepted
TOLERANCE = 1e-4

INSTALL_HINT = 'pip install mlla-mm[deploy]  (onnx, onnxruntime, onnxscript, openvino)'


def require_deploy():
    """Import onnx, onnxscript and onnxruntime, or raise an ImportError naming the extra."""
    missing = []
    for name in ('onnx', 'onnxscript', 'onnxruntime'):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ImportError(f'ONNX export needs {", ".join(missing)}: {INSTALL_HINT}')


def exportable(model: nn.Module, backbone_only: bool = False) -> Tuple[nn.Module, str]:
    """The part of ``model`` that is exported (:func:`~mlla_mm.deploy.wrappers.export_wrapper`:
    a segmentor's logits, a detector's backbone + neck, or a backbone), and what it is in
    words. A model with a backbone but no head the wrappers know exports its backbone."""
    backbone = getattr(model, 'backbone', None)
    if backbone is not None and not backbone_only and not hasattr(model, 'extract_feat'):
        return backbone.eval(), f'backbone {type(backbone).__name__} (no head this tool exports)'
    wrapped = export_wrapper(model, backbone_only).eval()
    if isinstance(wrapped, SegmentorLogits):
        return wrapped, (f'{type(model).__name__} ({type(backbone).__name__} + '
                         f'{type(model.decode_head).__name__}): logits at the input size')
    if isinstance(wrapped, DetectorFeatures):
        return wrapped, (f'{type(model).__name__}: backbone {type(backbone).__name__} + neck '
                         'only (RoI heads and NMS are post-processing: export them with '
                         'mmdeploy)')
    return wrapped, f'backbone {type(wrapped).__name__}'


def _dcnv4_portable(value, offset_mask, group, kernel_size, stride, pad, dilation,
                    offset_scale):
    """``mlla_mm::dcnv4_numba`` as standard ops: DCNv4's ``grid_sample`` backend (one
    ``F.grid_sample`` per point, an ONNX ``GridSample``)."""
    from mlla_mm.models.layers.dcnv4 import _dcnv4_grid_sample
    from mlla_mm.models.layers.dcnv4_numba import _output_size
    height, width = value.shape[2:]
    return _dcnv4_grid_sample(value, offset_mask, group, kernel_size, stride, pad, dilation,
                              offset_scale,
                              _output_size(height, kernel_size, stride, pad, dilation),
                              _output_size(width, kernel_size, stride, pad, dilation))


@contextlib.contextmanager
def portable_operators():
    """While active, decompositions (``ExportedProgram.run_decompositions``, the ONNX
    exporter's) replace our operators, which no ONNX runtime has, by standard ops:
    ``mlla_kernels::routed_scan`` (every public scan maps onto it) by the portable routed scan
    (an ONNX ``Scan`` over chunks) and HRVMamba's ``mlla_mm::dcnv4_numba`` by its
    ``grid_sample`` formulation."""
    import torch._decomp
    import mlla_kernels  # noqa: F401  (registers the scan operators)
    import mlla_mm.models.layers.dcnv4_numba  # noqa: F401  (registers DCNv4's)
    from mlla_kernels.routed_scan.portable import routed_scan_portable

    portable = {torch.ops.mlla_kernels.routed_scan.default: routed_scan_portable,
                torch.ops.mlla_mm.dcnv4_numba.default: _dcnv4_portable}
    table = torch._decomp.decomposition_table
    previous = {op: table.get(op) for op in portable}
    table.update(portable)
    try:
        yield
    finally:
        for op, before in previous.items():
            if before is None:
                del table[op]
            else:
                table[op] = before


def _as_tuple(outputs) -> Tuple[torch.Tensor, ...]:
    return tuple(outputs) if isinstance(outputs, (tuple, list)) else (outputs, )


def export_onnx(module: nn.Module, inputs: torch.Tensor, path: str, dynamic: bool = False,
                opset: int = 18, optimize: bool = True) -> float:
    """Write ``module(inputs)`` to the ONNX file ``path``; returns the export time in s.

    ``optimize``: run the exporter's graph optimizer (constant folding, fusions; onnxruntime
    optimizes again when it loads the file, so this only makes the file smaller and quicker to
    load). It is most of the export time of a large graph (HRVMamba: 19 of 30 s); the tests
    skip it.

    ``dynamic``: the batch, H and W of the input are left free. Today this works for
    scan-free models (MambaOut); models with a scan fail at export (the portable scan's chunk
    arithmetic on symbolic sizes) and MLLA's file keeps its traced size (check the file at a
    second size, as the tool does)."""
    require_deploy()
    dynamic_shapes = None
    if dynamic:
        auto = torch.export.Dim.AUTO
        dynamic_shapes = ({0: auto, 2: auto, 3: auto}, )
    start = time.perf_counter()
    with portable_operators(), torch.no_grad():
        try:
            program = torch.onnx.export(module, (inputs, ), dynamo=True, opset_version=opset,
                                        dynamic_shapes=dynamic_shapes, input_names=['inputs'],
                                        optimize=optimize, verbose=False)
        except Exception as error:
            if not dynamic:
                raise
            raise RuntimeError(
                f'the export with a dynamic input size failed ({type(error).__name__}; today '
                'only scan-free backbones such as MambaOut export with free H and W, see '
                'docs/deploy.md "ONNX"): export without --dynamic, at the size you deploy'
            ) from error
    program.save(path)
    return time.perf_counter() - start


def best_ms(run, repeats: int) -> float:
    """Best of ``repeats`` timed calls of ``run`` after a warm-up, in ms (NaN for 0)."""
    if repeats <= 0:   # not timed
        return float('nan')
    run()   # warm-up (numba kernels, onnxruntime's first-run allocations)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


@dataclass
class OnnxCheck:
    """A runtime (onnxruntime or OpenVINO) against PyTorch on one input."""
    runtime: str
    max_rel_diff: float                 # max over outputs of max|runtime - torch| / max|torch|
    rel_diffs: List[float]
    shapes: List[Tuple[int, ...]]
    file_mb: float
    torch_ms: float
    runtime_ms: float

    @property
    def ok(self) -> bool:
        return self.max_rel_diff <= TOLERANCE


def _runner(path: str, runtime: str, threads: int):
    """A function numpy image -> list of numpy outputs running the file in ``runtime``."""
    if runtime == 'onnxruntime':
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
        name = session.get_inputs()[0].name
        return lambda image: session.run(None, {name: image})
    if runtime == 'openvino':
        try:
            import openvino
        except ImportError as error:
            raise ImportError(f'the OpenVINO check needs openvino: {INSTALL_HINT}') from error
        core = openvino.Core()
        core.set_property('CPU', {'INFERENCE_NUM_THREADS': threads})
        compiled = core.compile_model(path, 'CPU')

        def run(image):
            result = compiled(image)
            return [result[out] for out in compiled.outputs]
        return run
    raise ValueError(f"runtime must be 'onnxruntime' or 'openvino'; got {runtime!r}")


def check_runtime(module: nn.Module, path: str, inputs: Sequence[torch.Tensor],
                  runtime: str = 'onnxruntime', repeats: int = 3,
                  threads: int = 0) -> List[OnnxCheck]:
    """Run the ONNX file ``path`` in ``runtime`` (``'onnxruntime'`` or ``'openvino'``, CPU) on
    each input of ``inputs`` and compare with ``module``; times are the best of ``repeats``
    runs after a warm-up (``repeats=0``: not timed, NaN)."""
    require_deploy()
    run = _runner(path, runtime, threads or torch.get_num_threads())
    checks = []
    for image in inputs:
        feed = image.detach().cpu().numpy()
        with torch.no_grad():
            refs = _as_tuple(module(image))
        outs = run(feed)
        if len(outs) != len(refs):
            raise RuntimeError(f'the ONNX file gives {len(outs)} outputs in {runtime}, '
                               f'PyTorch {len(refs)}')
        diffs, shapes = [], []
        for out, ref in zip(outs, refs):
            ref = ref.detach().float().cpu()
            out = torch.from_numpy(out).float()
            if out.shape != ref.shape:
                raise RuntimeError(f'output shape {tuple(out.shape)} in {runtime}, '
                                   f'{tuple(ref.shape)} in PyTorch')
            diffs.append(float((out - ref).abs().max() / ref.abs().max().clamp_min(1e-12)))
            shapes.append(tuple(ref.shape))
        with torch.no_grad():
            torch_ms = best_ms(lambda: module(image), repeats)
        runtime_ms = best_ms(lambda: run(feed), repeats)
        checks.append(OnnxCheck(runtime, max(diffs), diffs, shapes,
                                os.path.getsize(path) / 2**20, torch_ms, runtime_ms))
    return checks


def check_onnxruntime(module: nn.Module, path: str, inputs: Sequence[torch.Tensor],
                      repeats: int = 3, threads: int = 0) -> List[OnnxCheck]:
    """:func:`check_runtime` in onnxruntime."""
    return check_runtime(module, path, inputs, 'onnxruntime', repeats, threads)

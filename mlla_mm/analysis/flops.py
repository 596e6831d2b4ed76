"""Parameter and FLOP counting that sees the selective scans and attention.

mmengine's :class:`~mmengine.analysis.FlopAnalyzer` (fvcore's jit-trace
counter) only knows aten ops. A selective scan written as a Python loop shows
up as thousands of untracked element-wise ops (counted as 0), a Triton kernel
is invisible, and ``scaled_dot_product_attention`` is unknown to it. This
module adds what is missing, following the papers' conventions:

* one multiply-add counts as **one** FLOP (fvcore's "FLOPs" are MACs), and
  element-wise ops (activations, residual adds, scaling) are not counted;
* while counting, every ``mlla_kernels`` entry point is routed through
  :class:`_ScanFlopsProbe`, a tiny ``torch.autograd.Function``, so the trace
  holds exactly one ``prim::PythonOp._ScanFlopsProbe`` node per scan;
  :func:`scan_flop_jit` gives it the cost VMamba's ``flops_selective_scan_fn``
  assigns (after state-spaces/mamba#110): ``9·B·L·D·N`` for the recurrence,
  ``+ B·D·L`` for the ``D`` skip and ``+ B·D·L`` for the ``z`` gate, where
  ``D`` counts every scanned channel (all routes of a cross-scan or a routed
  scan, both directions of a bidirectional scan);
* ``aten::scaled_dot_product_attention`` counts ``Q·Kᵀ`` plus ``P·V``
  (``B·h·Lq·Lk·(d + dv)``), like the explicit matmuls of Swin;
* linear attention written with ``matmul``/``einsum`` (MLLA) is counted by
  mmengine's own matmul/einsum handles: ``Kᵀ·V`` then ``Q·(KᵀV)``, i.e.
  linear in tokens, plus the normaliser ``Q·mean(K)``;
* the DCNv4 aggregation (HRVMamba) goes through ``_DCNFlopsProbe`` the same way and
  counts ``4·k²`` MACs per output element (k² points, 4 bilinear corners): HRVMamba's
  ``DCNv4Function_jit``, ``36·H·W·C`` for its 3×3 kernel.

Entry points: :func:`count_complexity` (a module and its inputs),
:func:`complexity_of_config` (a detector/segmentor config, or its backbone).
"""
import contextlib
import functools
import inspect
import math
import sys
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

SCAN_ENTRY_POINTS = ('selective_scan', 'cross_scan_selective_scan',
                     'bidirectional_selective_scan', 'routed_selective_scan')
PROBE_OP = 'prim::PythonOp._ScanFlopsProbe'
DCN_PROBE_OP = 'prim::PythonOp._DCNFlopsProbe'


# --------------------------------------------------------------------------------------
# formulas
# --------------------------------------------------------------------------------------
SCAN_CONVENTIONS = ('mamba', 'ref')


def selective_scan_flops(batch: int, length: int, channels: int, d_state: int,
                         with_D: bool = True, with_z: bool = False,
                         convention: str = 'mamba') -> int:
    """FLOPs (MACs) of one selective scan.

    Args:
        batch (int): Batch size B.
        length (int): Sequence length L.
        channels (int): Scanned channels D (summed over routes/directions).
        d_state (int): State size N.
        with_D (bool): Whether the ``D·u`` skip is applied. Defaults to True.
        with_z (bool): Whether the output is gated by ``SiLU(z)``. Defaults to False.
        convention (str): ``'mamba'`` (default): ``9·B·L·D·N``, the count
            state-spaces/mamba#110 gives for the hardware-aware scan, used by
            VMamba's ``flops_selective_scan_fn`` and its current README numbers.
            ``'ref'``: the einsums of ``selective_scan_ref`` (VMamba's
            ``flops_selective_scan_ref``, numpy's optimal-path count halved to
            MACs), the older and smaller convention (about ``3·B·L·D·N``).
    """
    if convention == 'mamba':
        flops = 9 * batch * length * channels * d_state
    elif convention == 'ref':
        b, d, l, n = batch, channels, length, d_state
        flops = _einsum_macs('bdl,dn->bdln', [(b, d, l), (d, n)])        # exp(ΔA)
        flops += _einsum_macs('bdl,bnl,bdl->bdln', [(b, d, l), (b, n, l), (b, d, l)])  # ΔBu
        flops += l * (b * d * n + _einsum_macs('bdn,bdn->bd', [(b, d, n), (b, d, n)]))
    else:
        raise ValueError(f'unknown scan FLOPs convention {convention!r}; '
                         f'use one of {SCAN_CONVENTIONS}.')
    if with_D:
        flops += batch * channels * length
    if with_z:
        flops += batch * channels * length
    return int(flops)


def _einsum_macs(equation: str, shapes: Sequence[Sequence[int]]) -> int:
    """numpy's optimal-path FLOP estimate of an einsum, halved (a MAC is one FLOP)."""
    import numpy as np
    arrays = [np.broadcast_to(np.zeros(1), s) for s in shapes]
    report = np.einsum_path(equation, *arrays, optimize='optimal')[1]
    for line in report.split('\n'):
        if 'optimized flop' in line.lower():
            return int(float(line.split(':')[-1]) // 2)
    raise RuntimeError(f'numpy gave no FLOP count for {equation}')


def _shape(val: Any) -> Optional[List[int]]:
    from mmengine.analysis.jit_handles import get_shape
    return get_shape(val)


def scan_flop_jit(inputs: List[Any], outputs: List[Any], convention: str = 'mamba') -> int:
    """Handle for ``prim::PythonOp._ScanFlopsProbe`` (any of the four scans).

    The probe's tensor inputs are ``u, delta, A, B, C[, D][, z]`` (absent ones
    are left out of the trace). The layouts differ per entry point, but for all
    four ``A`` is ``(..., N)`` with one row per scanned channel, and ``delta``
    holds ``batch × channels × L`` values, so::

        N = A.shape[-1]; channels = A.numel() / N; L = delta.numel() / (batch·channels)

    Among the optional inputs, ``z`` is the one of rank ≥ 3 (it is per token);
    ``D`` is a per-channel vector or ``(2, Di)`` table.
    """
    shapes = [_shape(v) for v in inputs]
    u_shape, delta_shape, a_shape = shapes[0], shapes[1], shapes[2]
    batch = u_shape[0]
    d_state = a_shape[-1]
    channels = math.prod(a_shape) // d_state
    length = math.prod(delta_shape) // (batch * channels)
    extras = shapes[5:]
    with_z = any(len(s) >= 3 for s in extras)
    with_D = any(len(s) < 3 for s in extras)
    return selective_scan_flops(batch, length, channels, d_state, with_D=with_D, with_z=with_z,
                                convention=convention)


def sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """Handle for ``aten::scaled_dot_product_attention``: ``Q·Kᵀ`` + ``P·V`` MACs."""
    q, k, v = (_shape(x) for x in inputs[:3])
    batch_heads = math.prod(q[:-2])
    lq, d = q[-2], q[-1]
    lk, dv = k[-2], v[-1]
    return batch_heads * lq * lk * (d + dv)


def baddbmm_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """Handle for ``aten::baddbmm``: the batched matmul of inputs 1 and 2."""
    a, b = _shape(inputs[1]), _shape(inputs[2])
    return math.prod(a) * b[-1]


def dcn_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """Handle for ``prim::PythonOp._DCNFlopsProbe``: 4 corners x k² points per output value
    (the probe's last input is a zero vector of length k²)."""
    points = _shape(inputs[-1])[0]
    return 4 * points * math.prod(_shape(outputs[0]))


#: Handles added to mmengine's defaults. Ops mmengine ignores or leaves
#: unsupported (element-wise ones) stay uncounted, as in the papers.
EXTRA_FLOP_HANDLES: Dict[str, Callable] = {
    PROBE_OP: scan_flop_jit,
    'aten::scaled_dot_product_attention': sdpa_flop_jit,
    'aten::baddbmm': baddbmm_flop_jit,
    DCN_PROBE_OP: dcn_flop_jit,
}


# --------------------------------------------------------------------------------------
# routing the scans through the probe
# --------------------------------------------------------------------------------------
class _ScanFlopsProbe(torch.autograd.Function):
    """One traced node per scan; ``runner`` produces the output (real or zeros)."""

    @staticmethod
    def forward(ctx, runner, u, delta, A, B, C, D, z):  # noqa: D102
        return runner(u, delta, A, B, C, D, z)


def _probe_wrapper(name: str, original: Callable, compute: bool, stats: dict) -> Callable:
    """A drop-in replacement for the entry point ``name`` that goes through the probe."""
    signature = inspect.signature(original)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        with_last_state = bool(arguments.pop('return_last_state', False))
        if with_last_state:
            arguments['return_last_state'] = False

        def run(u, delta, A, B, C, D, z):
            if compute:
                return original(**arguments)
            if name == 'bidirectional_selective_scan':
                return u.new_zeros(u.shape[0], u.shape[2], u.shape[3])
            if name == 'routed_selective_scan':   # u shared or per route; y merged or not
                merged = arguments['merge']
                return u.new_zeros((u.shape[0], ) + tuple(u.shape[-3:]) if merged
                                   else arguments['delta'].shape)
            return torch.zeros_like(u)

        stats['calls'] += 1
        u = arguments['u']
        y = _ScanFlopsProbe.apply(run, u, arguments['delta'], arguments['A'], arguments['B'],
                                  arguments['C'], arguments.get('D'), arguments.get('z'))
        if with_last_state:  # a side output of the same scan: not counted again
            return y, u.new_zeros(u.shape[0], u.shape[1], arguments['A'].shape[-1],
                                  dtype=torch.float32)
        return y

    wrapper.__wrapped_scan__ = original
    return wrapper


def _kernel_originals() -> Dict[int, Tuple[str, Callable]]:
    """id -> (entry point name, function) for every kernel entry point object."""
    try:
        import mlla_kernels
    except ImportError:
        return {}
    found = {}
    modules = [m for n, m in list(sys.modules.items())
               if m is not None and (n == 'mlla_kernels' or n.startswith('mlla_kernels.'))]
    for mod in [mlla_kernels] + modules:
        for name in SCAN_ENTRY_POINTS:
            fn = getattr(mod, name, None)
            if callable(fn) and not hasattr(fn, '__wrapped_scan__'):
                found[id(fn)] = (name, fn)
    return found


@contextlib.contextmanager
def scans_as_probes(compute: bool = False) -> Iterator[Dict[str, int]]:
    """Route every reference to a ``mlla_kernels`` scan through :class:`_ScanFlopsProbe`.

    Every loaded module (outside ``mlla_kernels``' own submodules) whose global
    names one of the entry points gets a wrapper for the duration, so layers may
    import them any way they like (``mlla_kernels.x`` or ``from ... import x``).

    Args:
        compute (bool): Run the real kernel inside the probe. If False (default),
            the probe returns zeros of the right shape: FLOPs depend on shapes
            only, and a CPU scan at detection resolutions would take minutes.

    Yields:
        dict: ``patched`` (module attributes replaced) and ``calls`` (scans
        routed through the probe so far, updated live).
    """
    originals = _kernel_originals()
    stats = dict(patched=0, calls=0)
    patched = []
    for mod_name, mod in list(sys.modules.items()):
        if mod is None or mod_name.startswith('mlla_kernels.'):
            continue
        namespace = getattr(mod, '__dict__', None)
        if not isinstance(namespace, dict):
            continue
        for attr, value in list(namespace.items()):
            hit = originals.get(id(value)) if callable(value) else None
            if hit is not None and hit[1] is value:
                patched.append((mod, attr, value))
                setattr(mod, attr, _probe_wrapper(hit[0], value, compute, stats))
    stats['patched'] = len(patched)
    try:
        yield stats
    finally:
        for mod, attr, value in patched:
            setattr(mod, attr, value)


class _DCNFlopsProbe(torch.autograd.Function):
    """One traced node per DCNv4 aggregation; ``runner`` produces the output."""

    @staticmethod
    def forward(ctx, runner, value, offset_mask, points):  # noqa: D102
        return runner(value, offset_mask)


@contextlib.contextmanager
def dcn_as_probes(compute: bool = False) -> Iterator[None]:
    """Route :func:`mlla_mm.models.layers.dcnv4.dcnv4` through :class:`_DCNFlopsProbe`
    (the real op inside when ``compute``, else zeros of the output's shape)."""
    from ..models.layers import dcnv4 as module
    original = module.dcnv4

    @functools.wraps(original)
    def wrapper(value, offset_mask, group, kernel_size=3, stride=1, pad=1, dilation=1,
                offset_scale=1.0, backend='auto'):
        def run(value, offset_mask):
            # shapes from the probe's own inputs: the tracer cannot see outer values here
            if compute:
                return original(value, offset_mask, group, kernel_size, stride, pad, dilation,
                                offset_scale, backend)
            return value.new_zeros(value.shape[:2] + offset_mask.shape[2:])
        points = value.new_zeros(kernel_size * kernel_size)
        return _DCNFlopsProbe.apply(run, value, offset_mask, points)

    module.dcnv4 = wrapper
    try:
        yield
    finally:
        module.dcnv4 = original


# --------------------------------------------------------------------------------------
# counting
# --------------------------------------------------------------------------------------
def count_complexity(model: nn.Module, inputs: Union[torch.Tensor, Tuple[Any, ...]],
                     compute_scans: bool = False, scan_convention: str = 'mamba'
                     ) -> Dict[str, Any]:
    """Parameters and FLOPs (MACs) of ``model(*inputs)``.

    Args:
        model (nn.Module): The model, put in eval mode here.
        inputs (Tensor | tuple): Positional inputs of ``model.forward``.
        compute_scans (bool): See :func:`scans_as_probes`. Defaults to False.
        scan_convention (str): See :func:`selective_scan_flops`. Defaults to 'mamba'.

    Returns:
        dict: ``flops`` (int), ``params`` (int), ``by_module`` (FLOPs of each
        direct child), ``by_operator`` (FLOPs per op kind), ``scans`` (number of
        scan nodes counted) and ``uncounted_ops`` (ops seen but counted as 0,
        with their occurrence count).
    """
    from mmengine.analysis import FlopAnalyzer, parameter_count
    if isinstance(inputs, torch.Tensor):
        inputs = (inputs, )
    model.eval()
    with scans_as_probes(compute=compute_scans) as probes, dcn_as_probes(compute_scans), \
            torch.no_grad():
        handles = dict(EXTRA_FLOP_HANDLES)
        handles[PROBE_OP] = functools.partial(scan_flop_jit, convention=scan_convention)
        analyzer = FlopAnalyzer(model, inputs).set_op_handle(**handles)
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        analyzer.tracer_warnings('none')
        total = analyzer.total()  # the trace runs here, inside the context
        by_operator = dict(analyzer.by_operator())
        by_module = {name: analyzer.total(name) for name, _ in model.named_children()}
        if isinstance(model, _TensorModeForward):
            by_module = {name: analyzer.total(f'model.{name}')
                         for name, _ in model.model.named_children()}
        uncounted = dict(analyzer.unsupported_ops())
    return dict(
        flops=int(total),
        params=int(parameter_count(model)['']),
        by_module=by_module,
        by_operator=by_operator,
        scans=probes['calls'],
        uncounted_ops=uncounted,
    )


# --------------------------------------------------------------------------------------
# configs
# --------------------------------------------------------------------------------------
def _padded(size: int, divisor: int) -> int:
    return size if divisor <= 0 else int(math.ceil(size / divisor) * divisor)


def load_config(config: str, cfg_options: Optional[dict] = None):
    """Read a config file (its ``custom_imports`` are imported) and apply overrides."""
    from mmengine.config import Config
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if cfg.get('custom_imports'):
        from mmengine.utils import import_modules_from_strings
        import_modules_from_strings(**cfg['custom_imports'])
    import mlla_mm  # noqa: F401  (registers our backbones everywhere)
    return cfg


def build_model_from_cfg(model_cfg: dict, default_scope: Optional[str] = None) -> nn.Module:
    """Build ``model_cfg`` through mmengine's registry under ``default_scope``."""
    from mmengine.registry import MODELS, DefaultScope, init_default_scope
    import mlla_mm  # noqa: F401
    if default_scope:
        init_default_scope(default_scope)
        with DefaultScope.overwrite_default_scope(default_scope):
            return MODELS.build(model_cfg)
    return MODELS.build(model_cfg)


class _TensorModeForward(nn.Module):
    """``model(inputs, data_samples, mode='tensor')`` as a one-argument module.

    This is what mmdet's and mmseg's ``get_flops`` count: backbone + neck +
    heads in test mode (for two-stage detectors: RPN proposals, then the RoI
    heads on them), without post-processing.
    """

    def __init__(self, model: nn.Module, data_samples: Optional[list]):
        super().__init__()
        self.model = model
        self.data_samples = data_samples

    def forward(self, inputs):  # noqa: D102
        return self.model(inputs, self.data_samples, mode='tensor')


def _data_samples(model: nn.Module, height: int, width: int) -> Optional[list]:
    meta = dict(img_shape=(height, width), ori_shape=(height, width), pad_shape=(height, width),
                batch_input_shape=(height, width), scale_factor=(1.0, 1.0), img_id=0)
    module = type(model).__module__
    if module.startswith('mmdet.'):
        from mmdet.structures import DetDataSample
        return [DetDataSample(metainfo=meta)]
    if module.startswith('mmseg.'):
        from mmseg.structures import SegDataSample
        return [SegDataSample(metainfo=meta)]
    return None


def complexity_of_config(config: str, shape: Sequence[int], backbone_only: bool = False,
                         size_divisor: int = 32, cfg_options: Optional[dict] = None,
                         compute_scans: bool = False, scan_convention: str = 'mamba'
                         ) -> Dict[str, Any]:
    """Parameters and FLOPs of the model a config describes, at input ``shape``.

    Args:
        config (str): Path of an mmdet/mmseg (or mmengine) config.
        shape (sequence of int): ``(H, W)`` or ``(S,)`` for a square input.
        backbone_only (bool): Count ``model.backbone`` alone. Defaults to False.
        size_divisor (int): Pad H and W up to a multiple of this, as the data
            preprocessors do (non-positive: no padding). Defaults to 32.
        cfg_options (dict, optional): Overrides merged into the config.
        compute_scans (bool): See :func:`scans_as_probes`. Defaults to False.
        scan_convention (str): See :func:`selective_scan_flops`. Defaults to 'mamba'.

    Returns:
        dict: :func:`count_complexity`'s result plus ``input_shape``.
    """
    height, width = _parse_shape(shape)
    height, width = _padded(height, size_divisor), _padded(width, size_divisor)
    cfg = load_config(config, cfg_options)
    if 'model' not in cfg:
        raise ValueError(f'{config} has no `model` entry; pass a detector/segmentor config.')
    model_cfg = cfg.model
    model_cfg.pop('pretrained', None)
    scope = cfg.get('default_scope')
    if backbone_only:
        model_cfg = model_cfg.backbone
    model_cfg = _drop_pretrained(model_cfg)
    torch.manual_seed(0)  # RPN proposals (hence RoI-head FLOPs) depend on the weights
    model = build_model_from_cfg(model_cfg, scope)
    x = torch.randn(1, 3, height, width)
    if backbone_only:
        result = count_complexity(model, x, compute_scans, scan_convention)
    else:
        wrapped = _TensorModeForward(model, _data_samples(model, height, width))
        result = count_complexity(wrapped, x, compute_scans, scan_convention)

    result['input_shape'] = (1, 3, height, width)
    return result


def complexity_of_backbone(model_cfg: dict, shape: Sequence[int],
                           default_scope: Optional[str] = None,
                           compute_scans: bool = False, scan_convention: str = 'mamba'
                           ) -> Dict[str, Any]:
    """Parameters and FLOPs of a backbone built from ``model_cfg`` at ``shape``."""
    height, width = _parse_shape(shape)
    model = build_model_from_cfg(_drop_pretrained(model_cfg), default_scope)
    result = count_complexity(model, torch.randn(1, 3, height, width), compute_scans,
                              scan_convention)
    result['input_shape'] = (1, 3, height, width)
    return result


def _drop_pretrained(cfg):
    """Counting needs no weights: drop ``init_cfg``/``pretrained`` (no downloads)."""
    cfg = cfg.copy()
    cfg.pop('init_cfg', None)
    cfg.pop('pretrained', None)
    for key in ('backbone', ):
        if isinstance(cfg.get(key), dict):
            cfg[key] = _drop_pretrained(cfg[key])
    return cfg


def _parse_shape(shape: Sequence[int]) -> Tuple[int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape
    raise ValueError(f'shape must be (S,) or (H, W), got {shape}; e.g. --shape 1280 800.')


# --------------------------------------------------------------------------------------
# published numbers
# --------------------------------------------------------------------------------------
#: Numbers the papers/READMEs state, with what to count for them. ``config`` is
#: relative to the repository root (``mmdet::``: a config shipped with mmdet);
#: ``backbone`` entries count a backbone alone (their published figure includes
#: the 1000-class head: +0.0005 G for MLLA-T/VMamba-T, +0.0002 G for Vim-Ti).
PUBLISHED: List[Dict[str, Any]] = [
    dict(name='MLLA-T Mask R-CNN', config='configs/mask_rcnn_mlla_t.py', shape=(1280, 800),
         gflops=255, params_m=44, source='MLLA downstream/detection/README.md'),
    dict(name='VMamba-T Mask R-CNN', config='configs/mask_rcnn_vmamba_t.py', shape=(1280, 800),
         gflops=271, params_m=50, source='VMamba README.md'),
    dict(name='VMamba-T UperNet', config='configs/upernet_vmamba_t.py', shape=(512, 2048),
         gflops=949, params_m=62, source='VMamba README.md'),
    dict(name='MLLA-S Mask R-CNN', config='configs/mask_rcnn_mlla_s.py', shape=(1280, 800),
         gflops=319, params_m=63, source='MLLA downstream/detection/README.md'),
    dict(name='MLLA-B Mask R-CNN', config='configs/mask_rcnn_mlla_b.py', shape=(1280, 800),
         gflops=502, params_m=115, source='MLLA downstream/detection/README.md'),
    dict(name='VMamba-S Mask R-CNN', config='configs/mask_rcnn_vmamba_s.py', shape=(1280, 800),
         gflops=384, params_m=70, source='VMamba README.md'),
    dict(name='VMamba-B Mask R-CNN', config='configs/mask_rcnn_vmamba_b.py', shape=(1280, 800),
         gflops=485, params_m=108, source='VMamba README.md'),
    dict(name='MLLA-B UperNet', config='configs/upernet_mlla_b.py', shape=(512, 2048),
         gflops=1183, params_m=128, source='MLLA downstream/segmentation/README.md'),
    dict(name='VMamba-S UperNet', config='configs/upernet_vmamba_s.py', shape=(512, 2048),
         gflops=1028, params_m=82, source='VMamba README.md'),
    dict(name='VMamba-B UperNet', config='configs/upernet_vmamba_b.py', shape=(512, 2048),
         gflops=1170, params_m=122, source='VMamba README.md'),
    dict(name='Swin-T Mask R-CNN (mmdet, baseline)',
         config='mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py', shape=(1280, 800),
         gflops=267, params_m=48, source='Swin paper, quoted in VMamba README.md'),
    dict(name='MambaOut-T Mask R-CNN', config='configs/mask_rcnn_mambaout_t.py',
         shape=(1280, 800), gflops=262, params_m=43, source='MambaOut paper, Table 2'),
    dict(name='MambaOut-S Mask R-CNN', config='configs/mask_rcnn_mambaout_s.py',
         shape=(1280, 800), gflops=354, params_m=65, source='MambaOut paper, Table 2'),
    dict(name='MambaOut-B Mask R-CNN', config='configs/mask_rcnn_mambaout_b.py',
         shape=(1280, 800), gflops=495, params_m=100, source='MambaOut paper, Table 2'),
    dict(name='MambaOut-T UperNet', config='configs/upernet_mambaout_t.py', shape=(512, 2048),
         gflops=938, params_m=54, source='MambaOut paper, Table 3'),
    dict(name='MambaOut-S UperNet', config='configs/upernet_mambaout_s.py', shape=(512, 2048),
         gflops=1032, params_m=76, source='MambaOut paper, Table 3'),
    dict(name='MambaOut-B UperNet', config='configs/upernet_mambaout_b.py', shape=(512, 2048),
         gflops=1178, params_m=112, source='MambaOut paper, Table 3'),
    dict(name='MambaOut-T backbone', backbone=dict(type='MambaOut', arch='tiny'),
         shape=(224, 224), gflops=4.5, params_m=26.5,
         source='MambaOut README.md (classifier, with MLP head)'),
    dict(name='MLLA-T backbone', backbone=dict(type='MLLA', arch='tiny'), shape=(224, 224),
         gflops=4.2, params_m=25, source='MLLA README.md (classifier, with head)'),
    dict(name='VMamba-T backbone', backbone=dict(type='VMamba', arch='tiny'), shape=(224, 224),
         gflops=4.9, params_m=30, source='VMamba README.md (classifier, with head)'),
    dict(name='Vim-Ti backbone (no adapter)',
         backbone=dict(type='Vim', arch='tiny', with_adapter=False), shape=(224, 224),
         gflops=1.5, params_m=7, source='Vim paper (figure as given in the task brief)'),
    dict(name='Vim-Ti backbone (no adapter), ref scan count',
         backbone=dict(type='Vim', arch='tiny', with_adapter=False), shape=(224, 224),
         gflops=1.5, params_m=7, scan_convention='ref',
         source='Vim paper (figure as given in the task brief)'),
    dict(name='HRVMamba-B UperNet', config='configs/upernet_hrvmamba_b.py', shape=(512, 2048),
         gflops=1184, params_m=99, source='HRVMamba README.md'),
    *[dict(name=f'HRVMamba-{a[0].upper()} pose backbone {h}x{w}',
           backbone=dict(type='HRVMamba', arch=a, out_indices=(0, ), with_out_norms=False),
           shape=(h, w), gflops=g, params_m=p, source='HRVMamba README.md (COCO pose table)')
      for a, h, w, g, p in (('tiny', 256, 192, 1.1, 2), ('small', 256, 192, 3.3, 8),
                            ('base', 256, 192, 14.2, 47), ('small', 384, 288, 7.4, 8),
                            ('base', 384, 288, 32.0, 47))],
]


def resolve_config_path(config: str) -> str:
    """``mmdet::path`` / ``mmseg::path`` names a config shipped inside that package."""
    if '::' not in config:
        return config
    import importlib
    import os.path as osp
    package, rel = config.split('::', 1)
    root = osp.dirname(importlib.import_module(package).__file__)
    for base in (osp.join(root, '.mim', 'configs'), osp.join(root, 'configs')):
        if osp.exists(osp.join(base, rel)):
            return osp.join(base, rel)
    raise FileNotFoundError(f'{config}: no such config in the installed {package}.')

"""Backend choice and input checks shared by the public entry points.

Backends: ``naive`` (sequential reference), ``torch`` (chunked PyTorch scan: any device and
dtype), ``numba`` (fused CPU kernels; the default for CPU tensors when numba imports, except
float64) and ``triton`` (the default for CUDA tensors when triton imports). Implementations are
imported on first use, so ``import mlla_kernels`` needs torch alone, and numba / triton are
touched only when their backend is actually chosen (or asked about).
"""
import importlib
import importlib.util
import os
from typing import Dict, List, Optional, Sequence, Tuple

import torch

BACKENDS = ('naive', 'torch', 'numba', 'triton')
ENV_VAR = 'MLLA_KERNELS_BACKEND'

# operation -> backend -> (module relative to this package, function name)
_IMPLS: Dict[str, Dict[str, Tuple[str, str]]] = {
    op: {
        'naive': (f'.{op}.naive', f'{fn}_naive'),
        'torch': (f'.{op}.torch_impl', f'{fn}_torch'),
        'numba': (f'.{op}.numba_impl', f'{fn}_numba'),
        'triton': (f'.{op}.triton', f'{fn}_triton'),
    }
    for op, fn in (('selective_scan', 'selective_scan'),
                   ('cross_scan', 'cross_scan_selective_scan'),
                   ('bidirectional', 'bidirectional_selective_scan'),
                   ('routed_scan', 'routed_selective_scan'))
}

DTYPES = {
    'naive': (torch.float16, torch.bfloat16, torch.float32, torch.float64),
    'torch': (torch.float16, torch.bfloat16, torch.float32, torch.float64),
    # float64 runs with the exact library exp/log1p (for verification; 'auto' picks torch)
    'numba': (torch.float16, torch.bfloat16, torch.float32, torch.float64),
    'triton': (torch.float16, torch.bfloat16, torch.float32),
}


def _dtype_names(dtypes) -> str:
    return ', '.join(str(d).replace('torch.', '') for d in dtypes)


def triton_interpret() -> bool:
    """True when Triton runs kernels on the CPU through its interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get('TRITON_INTERPRET', '0') not in ('', '0')


def triton_status() -> Tuple[bool, str]:
    """(usable, reason): can the triton backend be imported here at all?"""
    if importlib.util.find_spec('triton') is None:
        return False, 'the triton package is not installed (pip install triton)'
    try:
        importlib.import_module(_IMPLS['selective_scan']['triton'][0], __package__)
    except ImportError as err:
        return False, f'mlla_kernels triton kernels failed to import: {err}'
    return True, ''


_NUMBA_STATUS: Optional[Tuple[bool, str]] = None


def numba_status() -> Tuple[bool, str]:
    """(usable, reason): can the numba backend be imported here? (checked once per process)"""
    global _NUMBA_STATUS
    if _NUMBA_STATUS is None:
        if importlib.util.find_spec('numba') is None:
            _NUMBA_STATUS = (False, 'the numba package is not installed (pip install numba)')
        else:
            try:
                importlib.import_module('.numba_utils', __package__)
                _NUMBA_STATUS = (True, '')
            except Exception as err:  # numba present but broken (e.g. numpy too new for it)
                _NUMBA_STATUS = (False, f'mlla_kernels numba kernels failed to import: '
                                        f'{type(err).__name__}: {err}')
    return _NUMBA_STATUS


def available_backends(device=None) -> List[str]:
    """Backends that can run here for tensors on ``device`` (default: cuda if present, else cpu)."""
    if device is None:
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    device = torch.device(device)
    names = ['naive', 'torch']
    if device.type == 'cpu' and numba_status()[0]:
        names.append('numba')
    if (device.type == 'cuda' or (device.type == 'cpu' and triton_interpret())) \
            and triton_status()[0]:
        names.append('triton')
    return names


def auto_backend(device: torch.device, dtype: Optional[torch.dtype] = None) -> str:
    """What 'auto' runs: triton on CUDA, numba on CPU (float64: torch), else torch."""
    if device.type == 'cuda' and triton_status()[0]:
        return 'triton'
    if device.type == 'cpu' and dtype != torch.float64 and numba_status()[0]:
        return 'numba'
    return 'torch'


def resolve_backend(backend: str, device: torch.device,
                    dtype: Optional[torch.dtype] = None) -> str:
    """Turn 'auto' (or the env override) into a concrete backend name and check it can run."""
    if backend == 'auto':
        backend = os.environ.get(ENV_VAR, 'auto').strip().lower() or 'auto'
        if backend == 'auto':
            return auto_backend(device, dtype)
        where = f'environment variable {ENV_VAR}'
    else:
        where = 'backend'
    if backend not in BACKENDS:
        raise ValueError(f"{where} must be one of 'auto', {', '.join(map(repr, BACKENDS))}; "
                         f'got {backend!r}')
    if backend == 'numba':
        ok, reason = numba_status()
        if not ok:
            raise RuntimeError(f"backend='numba' is unavailable: {reason}. "
                               "Use backend='torch' (or 'auto').")
        if device.type != 'cpu':
            raise RuntimeError(f"backend='numba' runs on CPU tensors; got device {device}. "
                               "Use backend='auto' (triton on CUDA) or 'torch'.")
    if backend == 'triton':
        ok, reason = triton_status()
        if not ok:
            raise RuntimeError(f"backend='triton' is unavailable: {reason}. "
                               "Use backend='torch' (or 'auto').")
        if device.type == 'cpu' and not triton_interpret():
            raise RuntimeError("backend='triton' needs CUDA tensors; on CPU it runs only under "
                               "Triton's interpreter (set TRITON_INTERPRET=1 before importing "
                               "triton, slow) -- use backend='torch' for CPU tensors.")
        if device.type not in ('cuda', 'cpu'):
            raise RuntimeError(f"backend='triton' supports cuda tensors (or cpu under "
                               f"TRITON_INTERPRET=1); got device {device}.")
    return backend


def get_impl(op: str, backend: str):
    """The implementation function of operation ``op`` for a concrete backend (imported lazily)."""
    module, name = _IMPLS[op][backend]
    return getattr(importlib.import_module(module, __package__), name)


def _fmt(shape) -> str:
    """Python tuple notation: (batch, D, L), (D,)."""
    inner = ', '.join(str(s) for s in shape)
    return f'({inner},)' if len(shape) == 1 else f'({inner})'


class Checker:
    """Validates the tensors of one call: shapes against symbols, one device, allowed dtypes."""

    def __init__(self, op: str):
        self.op = op
        self.sizes: Dict[str, int] = {}
        self.tensors: List[Tuple[str, torch.Tensor]] = []

    def shape(self, name: str, tensor: Optional[torch.Tensor], dims: Sequence[str],
              optional: bool = False):
        """Check ``tensor`` has the symbolic shape ``dims`` (e.g. ('batch', 'D', 'L'))."""
        expected = _fmt(dims)
        if tensor is None:
            if optional:
                return
            raise ValueError(f'{self.op}: {name} is required, with shape {expected}')
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f'{self.op}: {name} must be a torch.Tensor of shape {expected}; '
                            f'got {type(tensor).__name__}')
        if tensor.dim() != len(dims):
            raise ValueError(f'{self.op}: {name} must have shape {expected}; '
                             f'got {_fmt(tensor.shape)}')
        for sym, size in zip(dims, tensor.shape):
            if isinstance(sym, int):
                if size != sym:
                    raise ValueError(f'{self.op}: {name} must have shape {expected}; '
                                     f'got {_fmt(tensor.shape)}')
            elif sym in self.sizes and self.sizes[sym] != size:
                raise ValueError(
                    f'{self.op}: {name} must have shape {expected} with {sym}={self.sizes[sym]} '
                    f'(from the arguments before it); got {_fmt(tensor.shape)}')
            else:
                self.sizes.setdefault(sym, size)
        self.tensors.append((name, tensor))

    def device(self) -> torch.device:
        """The one device all tensors share (checked)."""
        first_name, first = self.tensors[0]
        for name, t in self.tensors[1:]:
            if t.device != first.device:
                raise ValueError(f'{self.op}: all tensors must be on one device; {first_name} is '
                                 f'on {first.device} but {name} is on {t.device}')
        return first.device

    def dtypes(self, backend: str):
        allowed = DTYPES[backend]
        for name, t in self.tensors:
            if t.dtype not in allowed:
                raise TypeError(f"{self.op}: {name} has dtype {str(t.dtype).replace('torch.', '')}"
                                f"; backend '{backend}' supports {_dtype_names(allowed)}")

    def positive(self, *symbols: str):
        for sym in symbols:
            if self.sizes.get(sym, 1) < 1:
                raise ValueError(f'{self.op}: {sym} must be at least 1; got {self.sizes[sym]} '
                                 '(empty inputs are not supported)')

    def resolve(self, backend: str) -> str:
        """Check device/dtypes and return the concrete backend to run."""
        name = resolve_backend(backend, self.device(), self.tensors[0][1].dtype)
        self.dtypes(name)
        if name == 'triton':   # first use on a GPU: checked against 'torch' (selfcheck.py)
            from .selfcheck import backend_for
            name = backend_for(self.op, backend, dict(self.tensors), self.sizes)
        return name

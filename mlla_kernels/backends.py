"""The backend table: one :class:`Backend` row per backend -- its dtypes, the devices it runs
on, whether it can be imported here, whether ``'auto'`` may pick it, and the engine (a module
with a ``routed_scan``) the operations map onto where the backend has no code of its own.

Adding a backend is one row here plus its module(s) (docs/contributing.md). The choice of a
backend for a call and the check of its arguments live in :mod:`mlla_kernels.dispatch`; the
operators (:mod:`mlla_kernels.library`) read the engines from this table. Nothing here
imports numba or triton until a row's ``status`` is asked.
"""
import importlib
import importlib.util
import os
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

import torch

ENV_VAR = 'MLLA_KERNELS_BACKEND'

ALL_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
HALF_AND_SINGLE = (torch.float16, torch.bfloat16, torch.float32)


def triton_interpret() -> bool:
    """True when Triton runs kernels on the CPU through its interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get('TRITON_INTERPRET', '0') not in ('', '0')


def _importable(package: str, module: str, install: str) -> Tuple[bool, str]:
    """(usable, reason): ``package`` installed and our ``module`` importing."""
    if importlib.util.find_spec(package) is None:
        return False, f'the {package} package is not installed ({install})'
    try:
        importlib.import_module(module, __package__)
    except Exception as err:  # present but broken (e.g. numpy too new for numba)
        return False, (f'mlla_kernels {package} kernels failed to import: '
                       f'{type(err).__name__}: {err}')
    return True, ''


_STATUS: Dict[str, Tuple[bool, str]] = {}


def numba_status() -> Tuple[bool, str]:
    """(usable, reason): can the numba backend be imported here? (checked once per process)"""
    if 'numba' not in _STATUS:
        _STATUS['numba'] = _importable('numba', '.routed_scan.numba', 'pip install numba')
    return _STATUS['numba']


def triton_status() -> Tuple[bool, str]:
    """(usable, reason): can the triton backend be imported here at all?"""
    return _importable('triton', '.routed_scan.triton', 'pip install triton')


def _always() -> Tuple[bool, str]:
    return True, ''


def _any_device(device: torch.device) -> Optional[str]:
    return None


def _cpu_only(device: torch.device) -> Optional[str]:
    if device.type != 'cpu':
        return (f"backend='numba' runs on CPU tensors; got device {device}. "
                "Use backend='auto' (triton on CUDA) or 'torch'.")
    return None


def _meta_only(device: torch.device) -> Optional[str]:
    if device.type != 'meta':
        return (f"backend='meta' computes shapes only, for meta tensors; got device {device}. "
                "Use backend='auto'.")
    return None


def _cuda_or_interpreter(device: torch.device) -> Optional[str]:
    if device.type == 'cpu' and not triton_interpret():
        return ("backend='triton' needs CUDA tensors; on CPU it runs only under Triton's "
                "interpreter (set TRITON_INTERPRET=1 before importing triton, slow) -- use "
                "backend='torch' for CPU tensors.")
    if device.type not in ('cuda', 'cpu'):
        return (f"backend='triton' supports cuda tensors (or cpu under TRITON_INTERPRET=1); "
                f'got device {device}.')
    return None


class Backend(NamedTuple):
    """One row of the backend table."""
    name: str                                   # also the module name in each op's folder
    what: str                                   # one line for the docs and error messages
    dtypes: Tuple[torch.dtype, ...]             # input dtypes it accepts
    status: Callable[[], Tuple[bool, str]]      # (importable here, why not)
    device_error: Callable[[torch.device], Optional[str]]   # None where it runs on that device
    auto_devices: Tuple[str, ...] = ()          # device types 'auto' may pick it for ...
    auto_dtypes: Tuple[torch.dtype, ...] = ()   # ... with u in one of these dtypes
    auto_rank: int = 0                          # 'auto' takes the highest rank that fits
    selfcheck: bool = False                     # checked against torch at first use on a GPU
    engine: Optional[str] = None                # module with the routed_scan every op maps to


BACKENDS_TABLE: Tuple[Backend, ...] = (
    Backend('naive', 'the sequential recurrence, readable; the test oracle', ALL_FLOATS,
            _always, _any_device),
    Backend('torch', 'chunked PyTorch scan with a hand-written backward; runs anywhere',
            ALL_FLOATS, _always, _any_device, auto_devices=('cpu', 'cuda', 'mps', 'meta'),
            auto_dtypes=ALL_FLOATS, auto_rank=1),
    Backend('meta', 'output shapes only, for meta tensors (no data, no gradients)', ALL_FLOATS,
            _always, _meta_only, auto_devices=('meta',), auto_dtypes=ALL_FLOATS, auto_rank=2,
            engine='.routed_scan.meta'),
    # float64 runs with the exact library exp/log1p (for verification; 'auto' picks torch)
    Backend('numba', 'fused CPU kernels (forward and recompute-backward)', ALL_FLOATS,
            numba_status, _cpu_only, auto_devices=('cpu',), auto_dtypes=HALF_AND_SINGLE,
            auto_rank=2, engine='.routed_scan.numba'),
    Backend('triton', 'fused Triton kernels (forward and backward)', HALF_AND_SINGLE,
            triton_status, _cuda_or_interpreter, auto_devices=('cuda',),
            auto_dtypes=HALF_AND_SINGLE, auto_rank=3, selfcheck=True,
            engine='.routed_scan.triton'),
)
TABLE: Dict[str, Backend] = {row.name: row for row in BACKENDS_TABLE}
BACKENDS: Tuple[str, ...] = tuple(TABLE)
#: what a ``kernel_backend`` argument may name
KERNEL_BACKENDS: Tuple[str, ...] = ('auto',) + BACKENDS


def _dtype_names(dtypes) -> str:
    return ', '.join(str(d).replace('torch.', '') for d in dtypes)


def available_backends(device=None) -> List[str]:
    """Backends that can run here for tensors on ``device`` (default: cuda if present, else cpu)."""
    if device is None:
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    device = torch.device(device)
    return [row.name for row in BACKENDS_TABLE
            if row.device_error(device) is None and row.status()[0]]


def auto_backend(device: torch.device, dtype: Optional[torch.dtype] = None) -> str:
    """What 'auto' runs: the highest-ranked row that may be picked for this device and dtype
    and imports here (triton on CUDA, numba on CPU except float64, else torch)."""
    fits = [row for row in BACKENDS_TABLE if row.auto_rank and device.type in row.auto_devices
            and (dtype is None or dtype in row.auto_dtypes)]
    for row in sorted(fits, key=lambda r: -r.auto_rank):
        if row.status()[0]:
            return row.name
    return 'torch'

"""Backbones; each module registers its class on import (in this order)."""
from .base import DenseBackbone
from .mlla import MLLA  # isort: skip
from .vmamba import VMamba  # isort: skip
from .vim import Vim  # isort: skip
from .mambaout import MambaOut  # isort: skip
from .demystify import DemystifyNet  # isort: skip
from .hrvmamba import HRVMamba  # isort: skip
from .vmunet import VMUNet  # isort: skip
from .mhs_vmamba import MHSVMamba  # isort: skip

__all__ = ['DenseBackbone', 'MLLA', 'VMamba', 'Vim', 'MambaOut', 'DemystifyNet', 'HRVMamba',
           'VMUNet', 'MHSVMamba']

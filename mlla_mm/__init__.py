"""mlla-mm: Mamba-era vision backbones for mmdet/mmseg/mmpose/mmpretrain (OpenMMLab 2.0 plugin).

Families: MLLA, VMamba, Vim, MambaOut, DemystifyNet (the ablation models of "Demystify
Mamba in Vision"), HRVMamba (high-resolution branches of VSS blocks with DCNv4, for pose and
dense prediction) and MHS-VM (VMUNet, VM-UNet with Multi-Head Scan blocks for binary medical
segmentation, and MHSVMamba, VMamba's frame with MHS mixers), each a
:class:`~mlla_mm.models.backbones.DenseBackbone`; their scans run on :mod:`mlla_kernels`
(Triton on GPU, fused numba kernels on CPU), MHS-VM's over routes given as data (snake,
zigzag, spiral, raster).

Importing this package applies the compatibility shims (:mod:`mlla_mm.compat`)
and registers every model into the registries of mmengine and of whichever of
mmdet, mmseg, mmpose and mmpretrain are installed, and lets configs name ours as
``mlla_mm::NAME.py`` (:mod:`mlla_mm.utils.package_configs`).
"""
import mlla_kernels  # noqa: F401  (first: shortens OpenMP's spin-waits before torch loads it)
from . import compat  # noqa: F401  (applies shims on import)
from . import models  # noqa: F401  (registers backbones)
from . import engine  # noqa: F401  (registers optimizer constructors)
from . import datasets  # noqa: F401  (demo data generator; numpy only)
from . import evaluation  # noqa: F401  (registers metrics; mmengine only)
from .utils import package_configs

package_configs.install()  # `_base_ = ['mlla_mm::...']`, Config.fromfile('mlla_mm::...')

__version__ = '0.1.0'

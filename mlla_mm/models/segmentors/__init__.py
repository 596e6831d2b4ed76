"""mmseg parts of the VM-UNet + MHS segmentor.

They need mmseg, whose models take seconds to import, so ``import mlla_mm`` leaves them out:
configs that use them name this module in ``custom_imports`` (as the ``vmunet_mhs_*``
configs do), code imports it.
"""
from .vmunet_head import VMUNetHead
from .vmunet_segmentor import VMUNetSegmentor

__all__ = ['VMUNetHead', 'VMUNetSegmentor']

from .common import DropPath, LayerNorm2d, drop_path, stochastic_depth_rates
from .linear_attention import MLLALinearAttention
from .rope import apply_rope_2d, rope_2d_tables

__all__ = ['DropPath', 'LayerNorm2d', 'drop_path', 'stochastic_depth_rates',
           'MLLALinearAttention', 'apply_rope_2d', 'rope_2d_tables']
from .ss2d import SS2D, Linear2d  # noqa: E402

__all__ += ['SS2D', 'Linear2d']
from .bimamba import BiMambaMixer  # noqa: E402
from .rmsnorm import RMSNorm  # noqa: E402
from .simple_pyramid import SimplePyramid, pyramid_branches  # noqa: E402

__all__ += ['BiMambaMixer', 'RMSNorm', 'SimplePyramid', 'pyramid_branches']
from .unified_attention import (DESIGN_PRESETS, PAPER_ROWS, UnifiedDesign,  # noqa: E402
                                UnifiedLinearAttention)

__all__ += ['DESIGN_PRESETS', 'PAPER_ROWS', 'UnifiedDesign', 'UnifiedLinearAttention']
from .mhs import MHS, MHSGatedMixer, RouteSSM, ScanHead, scan_route_attention  # noqa: E402

__all__ += ['MHS', 'MHSGatedMixer', 'RouteSSM', 'ScanHead', 'scan_route_attention']

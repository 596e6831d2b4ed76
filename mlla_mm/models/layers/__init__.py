from .bimamba import BiMambaMixer
from .common import DropPath, LayerNorm2d, drop_path, stochastic_depth_rates
from .linear_attention import MLLALinearAttention
from .mhs import (MHS, MHSGatedMixer, MHSGatedMixer2d, RouteSSM, ScanHead, scan_route_attention,
                  scan_subspaces)
from .rmsnorm import RMSNorm
from .rope import apply_rope_2d, rope_2d_tables
from .simple_pyramid import SimplePyramid, pyramid_branches
from .ss2d import SS2D, Linear2d
from .ssm import KERNEL_BACKENDS, SSMInit, check_kernel_backend, inverse_softplus
from .tokens import (DepthwiseResidual, HWShape, TokenBlock, TokenMlp, TokenStage,
                     map_to_tokens, tokens_to_map)
from .unified_attention import (DESIGN_PRESETS, PAPER_ROWS, UnifiedDesign,
                                UnifiedLinearAttention)

__all__ = ['BiMambaMixer', 'DropPath', 'LayerNorm2d', 'drop_path', 'stochastic_depth_rates',
           'MLLALinearAttention', 'RMSNorm', 'apply_rope_2d', 'rope_2d_tables',
           'SimplePyramid', 'pyramid_branches', 'SS2D', 'Linear2d', 'KERNEL_BACKENDS',
           'SSMInit', 'check_kernel_backend', 'inverse_softplus', 'DepthwiseResidual',
           'HWShape', 'TokenBlock', 'TokenMlp', 'TokenStage', 'map_to_tokens',
           'tokens_to_map', 'DESIGN_PRESETS', 'PAPER_ROWS', 'UnifiedDesign',
           'UnifiedLinearAttention', 'MHS', 'MHSGatedMixer', 'MHSGatedMixer2d', 'RouteSSM',
           'ScanHead', 'scan_route_attention', 'scan_subspaces']

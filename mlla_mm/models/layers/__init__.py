from .common import DropPath, LayerNorm2d, drop_path, stochastic_depth_rates

__all__ = ['DropPath', 'LayerNorm2d', 'drop_path', 'stochastic_depth_rates']

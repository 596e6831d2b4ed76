from . import backbones, layers, losses  # noqa: F401

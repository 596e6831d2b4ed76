"""One helper that registers a class into every installed OpenMMLab registry.

A backbone is written once and becomes visible to mmengine, mmdet, mmseg,
mmpretrain and mmpose alike, whichever of them are installed (any subset, or none).

Usage::

    @register_model()
    class MLLA(BaseModule): ...

    @register_optim_wrapper_constructor()
    class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor): ...

    @register_hook()
    class ExactResumeHook(Hook): ...
"""
import importlib
from typing import Callable, Dict, List, Optional, Tuple

# Codebases whose registries we fill, in order. mmengine's root registries are
# always filled, so `mmengine.registry.MODELS.build(...)` works without any codebase.
CODEBASES: Tuple[str, ...] = ('mmdet', 'mmseg', 'mmpretrain', 'mmpose')

_REGISTERED: Dict[str, List[type]] = {}


def installed_codebases() -> List[str]:
    """The OpenMMLab codebases importable here (subset of :data:`CODEBASES`)."""
    found = []
    for name in CODEBASES:
        try:
            importlib.import_module(f'{name}.registry')
        except Exception:  # not installed, or broken against this torch/mmcv
            continue
        found.append(name)
    return found


def _registries(kind: str) -> list:
    import mmengine.registry as root
    regs = [getattr(root, kind)]
    for name in installed_codebases():
        mod = importlib.import_module(f'{name}.registry')
        reg = getattr(mod, kind, None)
        if reg is not None and reg not in regs:
            regs.append(reg)
    return regs


def _register(kind: str, cls: type, name: Optional[str] = None) -> type:
    for reg in _registries(kind):
        # force=True keeps re-imports (e.g. importlib.reload in tests) harmless.
        reg.register_module(name=name, module=cls, force=True)
    _REGISTERED.setdefault(kind, []).append(cls)
    return cls


def _decorator(kind: str) -> Callable:
    def factory(name: Optional[str] = None) -> Callable[[type], type]:
        def wrap(cls: type) -> type:
            return _register(kind, cls, name)
        return wrap
    return factory


register_model = _decorator('MODELS')
register_optim_wrapper_constructor = _decorator('OPTIM_WRAPPER_CONSTRUCTORS')
register_optim_wrapper = _decorator('OPTIM_WRAPPERS')
register_hook = _decorator('HOOKS')
register_metric = _decorator('METRICS')
register_dataset = _decorator('DATASETS')
register_transform = _decorator('TRANSFORMS')


def registered(kind: str = 'MODELS') -> List[type]:
    """Classes this package registered under ``kind``."""
    return list(_REGISTERED.get(kind, []))

"""Backbones; each module registers its class on import."""
import importlib

__all__ = []
for _name, _cls in (('mlla', 'MLLA'), ('vmamba', 'VMamba'), ('vim', 'Vim'),
                    ('mambaout', 'MambaOut'), ('demystify', 'DemystifyNet'),
                    ('hrvmamba', 'HRVMamba')):
    try:
        _mod = importlib.import_module(f'.{_name}', __name__)
    except ModuleNotFoundError as _err:  # family not written yet
        if _err.name != f'{__name__}.{_name}':
            raise
        continue
    globals()[_cls] = getattr(_mod, _cls)
    __all__.append(_cls)

"""Loading official (ImageNet) checkpoints into our backbones.

Every backbone goes through :func:`load_pretrained`: the state dict is taken
from ``state_dict``/``model`` (or the raw dict), the backbone's own converter
renames/drops keys (classifier head, fixed-resolution buffers, ...), the
remaining keys are loaded non-strictly, and everything that did not match is
logged. A file whose keys match nothing is an error, never a silent random init.
"""
import os
from typing import Callable, Dict, Optional, Sequence

import torch
from torch import nn

StateDict = Dict[str, torch.Tensor]


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used for the model it is loaded into."""


def _logger():
    from mmengine.logging import MMLogger
    return MMLogger.get_current_instance()


def extract_state_dict(checkpoint) -> StateDict:
    """The weights of a checkpoint file: ``state_dict``, else ``model``, else ``model_ema`` (a
    Swin-style trainer file holding only its EMA weights), else the dict itself."""
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f'expected a dict in the checkpoint file, got {type(checkpoint).__name__}')
    for key in ('state_dict', 'model', 'model_ema'):
        if key in checkpoint and isinstance(checkpoint[key], dict):
            return dict(checkpoint[key])
    return dict(checkpoint)


def strip_prefix(state_dict: StateDict, prefixes: Sequence[str] = ('module.', 'backbone.')) -> StateDict:
    """Remove a DDP ``module.`` / detector ``backbone.`` prefix when every key has it."""
    for prefix in prefixes:
        if state_dict and all(k.startswith(prefix) for k in state_dict):
            state_dict = {k[len(prefix):]: v for k, v in state_dict.items()}
    return state_dict


class _Untrusted:
    """Stands in for a class a checkpoint names that we do not trust (e.g. a training
    config object): it is created and filled with nothing, so no foreign code runs."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass


def _tensors_only_pickle_module(stubbed: list):
    """A pickle module whose Unpickler resolves only torch's weights-only allow-list
    (plus globals registered with ``torch.serialization.add_safe_globals``) and turns
    every other global into an inert :class:`_Untrusted` subclass."""
    import pickle
    import types

    from torch import _weights_only_unpickler as wou
    allowed = dict(wou._get_allowed_globals())
    for item in torch.serialization.get_safe_globals():
        obj, name = item if isinstance(item, tuple) else (item, f'{item.__module__}.{item.__qualname__}')
        allowed[name] = obj

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            key = f'{module}.{name}'
            if key in allowed:
                return allowed[key]
            stubbed.append(key)
            return type(name, (_Untrusted,), {'__module__': f'untrusted.{module}'})

    mod = types.ModuleType('mlla_mm_tensors_only_pickle')
    mod.Unpickler = Unpickler
    mod.load = lambda f, **kw: Unpickler(f, **kw).load()
    return mod


def read_checkpoint(filename: str, map_location: str = 'cpu'):
    """Read a checkpoint safely: a local path, or a URL through mmengine.

    Local files are read with ``weights_only=True``. Official releases often pickle
    their training config (e.g. a yacs ``CfgNode``), which ``weights_only`` refuses;
    such files are re-read with an unpickler that replaces every non-allow-listed
    class with an inert stand-in, so their tensors load and no foreign code runs.
    """
    is_remote = '://' in filename
    if is_remote:
        from mmengine.runner.checkpoint import CheckpointLoader
        return CheckpointLoader.load_checkpoint(filename, map_location=map_location)
    if not os.path.isfile(filename):
        raise FileNotFoundError(
            f'pretrained checkpoint not found: {filename!r}. Download the official '
            'ImageNet weights (see README, "Pretrained weights") and point '
            "init_cfg=dict(type='Pretrained', checkpoint=...) at the file, or pass "
            '--cfg-options model.backbone.init_cfg=None to train from scratch.')
    import pickle
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        stubbed: list = []
        checkpoint = torch.load(filename, map_location=map_location, weights_only=False,
                                pickle_module=_tensors_only_pickle_module(stubbed))
        _logger().warning(f'{filename}: ignored non-tensor objects of untrusted types '
                          f'{sorted(set(stubbed))} (not executed)')
        return checkpoint


def load_pretrained(model: nn.Module,
                    filename: str,
                    convert: Optional[Callable[[StateDict, nn.Module], StateDict]] = None,
                    prefix: Optional[str] = None,
                    logger=None) -> Dict[str, list]:
    """Load an official checkpoint into ``model`` and report what did not match.

    Args:
        model: the backbone.
        filename: path or URL of the checkpoint.
        convert: ``convert(state_dict, model) -> state_dict`` renaming official
            keys to ours and dropping what the dense model does not have.
        prefix: if given, only keys under ``prefix`` (e.g. ``'backbone.'`` of a
            detector checkpoint) are taken, with the prefix removed.

    Returns:
        ``{'missing_keys': [...], 'unexpected_keys': [...]}``.

    Raises:
        CheckpointError: when no key of the file matches a key of the model, or
            a matching key has the wrong shape.
    """
    logger = logger or _logger()
    state_dict = extract_state_dict(read_checkpoint(filename))
    if prefix:
        state_dict = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    state_dict = strip_prefix(state_dict)
    if convert is not None:
        state_dict = convert(state_dict, model)
    own = model.state_dict()
    matched = [k for k in state_dict if k in own]
    if not matched:
        sample = ', '.join(sorted(state_dict)[:5]) or '<empty>'
        expected = ', '.join(sorted(own)[:5])
        raise CheckpointError(
            f'no key of {filename!r} matches {type(model).__name__}: the file has e.g. '
            f'[{sample}], the model expects e.g. [{expected}]. Is it a checkpoint of '
            f'another architecture or variant (check `arch`)?')
    bad_shapes = [f'{k}: file {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}'
                  for k in matched if state_dict[k].shape != own[k].shape]
    if bad_shapes:
        raise CheckpointError(
            f'{len(bad_shapes)} tensors of {filename!r} have the wrong shape for '
            f'{type(model).__name__} (wrong `arch`?): ' + '; '.join(bad_shapes[:5]))
    result = model.load_state_dict(state_dict, strict=False)
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    logger.info(f'loaded {len(matched)}/{len(own)} tensors of {type(model).__name__} '
                f'from {filename}')
    if missing:
        logger.warning(f'missing keys in checkpoint (left at init): {missing}')
    if unexpected:
        logger.warning(f'unexpected keys in checkpoint (ignored): {unexpected}')
    return dict(missing_keys=missing, unexpected_keys=unexpected)

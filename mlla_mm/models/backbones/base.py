"""Behaviour shared by every backbone of this package.

Subclasses provide ``arch_zoo`` (named presets), ``_freeze_stages()`` and,
if official checkpoints need it, ``convert_checkpoint()``; this base gives them
the OpenMMLab conventions: ``arch`` as alias or dict, ``frozen_stages``,
``norm_eval``, ``init_cfg=dict(type='Pretrained', checkpoint=...)`` loading
with key conversion, and a ``train()`` that returns ``self``.
"""
import copy
from typing import Any, Dict, Iterable, Optional, Sequence, Union

from mmengine.model import BaseModule
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ...utils.checkpoint import StateDict, load_pretrained


def resolve_arch(arch: Union[str, dict], arch_zoo: Dict[str, dict],
                 essential_keys: Iterable[str], owner: str,
                 defaults: Optional[Dict[str, Any]] = None) -> dict:
    """Turn ``arch`` (a preset name/alias or a dict) into a full settings dict.

    ``arch_zoo`` maps every accepted name (aliases included) to a settings dict.
    A dict ``arch`` must carry all ``essential_keys``; it may also be a preset
    name plus overrides: ``dict(preset='tiny', depths=[1, 1, 1, 1])``.
    ``defaults`` holds the optional keys and the values they take when absent;
    any key that is neither essential nor optional is an error listing the valid ones.
    """
    essential_keys = set(essential_keys)
    defaults = dict(defaults or {})
    settings = {**defaults, **_resolve_arch(arch, arch_zoo, essential_keys, owner)}
    unknown = set(settings) - essential_keys - set(defaults)
    if unknown:
        raise ValueError(f'{owner}: unknown arch keys {sorted(unknown)}; an arch dict takes '
                         f'{sorted(essential_keys | set(defaults))} (and optionally preset=...)')
    return settings


def _resolve_arch(arch, arch_zoo, essential_keys, owner) -> dict:
    if isinstance(arch, str):
        key = arch.lower()
        if key not in arch_zoo:
            raise ValueError(f'{owner}: unknown arch {arch!r}; choose one of '
                             f'{sorted(set(arch_zoo))} or pass a dict with keys '
                             f'{sorted(essential_keys)}')
        return copy.deepcopy(arch_zoo[key])
    if isinstance(arch, dict):
        arch = dict(arch)
        preset = arch.pop('preset', None)
        settings = _resolve_arch(preset, arch_zoo, essential_keys, owner) if preset else {}
        settings.update(arch)
        missing = essential_keys - set(settings)
        if missing:
            raise ValueError(f'{owner}: custom arch is missing {sorted(missing)}; '
                             f'it needs {sorted(essential_keys)}')
        return settings
    raise TypeError(f'{owner}: arch must be a str or dict, got {type(arch).__name__}')


class DenseBackbone(BaseModule):
    """Base of the hierarchical backbones: 4 NCHW maps for dense prediction.

    Args:
        out_indices: which stages' (or blocks') outputs to return.
        frozen_stages: stages ``0..frozen_stages`` (stem = 0 where the
            subclass says so) are set to eval and get ``requires_grad=False``;
            -1 freezes nothing.
        norm_eval: keep BatchNorm layers in eval mode while training.
        init_cfg: ``dict(type='Pretrained', checkpoint=PATH_OR_URL[, prefix=...])``
            loads an official checkpoint with key conversion; other init_cfgs
            behave as in mmengine.
    """

    arch_zoo: Dict[str, dict] = {}

    def __init__(self,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 init_cfg: Optional[Union[dict, list]] = None):
        super().__init__(init_cfg=init_cfg)
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

    def _check_out_indices(self, num_outputs: int) -> None:
        bad = [i for i in self.out_indices if not -num_outputs <= i < num_outputs]
        if bad:
            raise ValueError(f'{type(self).__name__}: out_indices {bad} out of range '
                             f'for {num_outputs} outputs')
        self.out_indices = tuple(i % num_outputs for i in self.out_indices)

    def _check_frozen_stages(self, num_stages: int,
                             meaning: str = '-1 none, 0 stem, i stem + stages 0..i-1') -> None:
        if not -1 <= self.frozen_stages <= num_stages:
            raise ValueError(f'{type(self).__name__}: frozen_stages must be in '
                             f'[-1, {num_stages}] ({meaning}), got {self.frozen_stages}')

    # -- checkpoints ---------------------------------------------------------
    def convert_checkpoint(self, state_dict: StateDict) -> StateDict:
        """Rename/drop official checkpoint keys to match this module (override)."""
        return state_dict

    def check_loaded(self, missing_keys: list, unexpected_keys: list, filename: str) -> None:
        """Judge what a pretrained load left out (override to raise; default: only logged)."""

    def init_weights(self) -> None:
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            checkpoint = cfg.get('checkpoint')
            if not checkpoint:
                raise ValueError(f"{type(self).__name__}: init_cfg type='Pretrained' needs "
                                 "a 'checkpoint' (path or URL)")
            self._init_default_weights()
            result = load_pretrained(self, checkpoint,
                                     convert=lambda sd, model: model.convert_checkpoint(sd),
                                     prefix=cfg.get('prefix'))
            self.check_loaded(result['missing_keys'], result['unexpected_keys'], checkpoint)
            self._is_init = True
            return
        self._init_default_weights()
        super().init_weights()

    def _init_default_weights(self) -> None:
        """The architecture's own random init (override)."""

    # -- train/eval ----------------------------------------------------------
    def _freeze_stages(self) -> None:
        """Freeze ``frozen_stages`` (override)."""

    @staticmethod
    def _freeze(module: nn.Module) -> None:
        module.eval()
        for p in module.parameters():
            p.requires_grad = False

    def train(self, mode: bool = True) -> 'DenseBackbone':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

"""The contract every backbone of this package keeps (:class:`DenseBackbone`).

A subclass provides ``arch_zoo`` (named presets) with ``essential_keys`` (and optionally
``arch_defaults``), sets ``in_channels``, ``num_features`` and ``num_stages``, names what
``frozen_stages`` freezes (``_stem_parts()``, ``_stage_parts(i)``) and, if official
checkpoints need it, ``convert_checkpoint()``; this base gives them the OpenMMLab
conventions: ``arch`` as alias or dict, ``out_channels``, ``frozen_stages``, ``norm_eval``,
a clear error for images of the wrong shape, ``init_cfg=dict(type='Pretrained',
checkpoint=...)`` loading with key conversion, and a ``train()`` that returns ``self``.
"""
import copy
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

import torch
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
    """Base of the backbones: images in, a tuple of NCHW maps out (for FPN / UPerHead).

    What a subclass does (see ``docs/contributing.md``, "Add a backbone"):

    * ``arch_zoo``: preset name (aliases included) -> settings dict; ``essential_keys``: the
      keys an ``arch`` dict must give; ``arch_defaults``: the optional keys and their values.
      ``self.resolve_arch(arch)`` turns ``arch`` into the settings (errors list the names).
    * ``self.in_channels`` (image channels) and ``self.num_features`` (channels of every
      output candidate, indexed like ``out_indices``); ``out_channels`` follows from them
      (override it where the maps are not ``num_features[i]`` in stage order, e.g. Vim).
    * ``self.num_stages`` (what ``frozen_stages`` counts), ``_stem_parts()`` and
      ``_stage_parts(i)``: the modules (and bare parameters) that ``frozen_stages`` freezes;
      call ``self._freeze_stages()`` at the end of ``__init__``.
    * ``_init_default_weights()``: the architecture's own random init; ``convert_checkpoint``
      / ``check_loaded`` for official checkpoints; ``forward`` starts with
      ``self._check_images(x)``.

    Args:
        out_indices: which stages' (or blocks') outputs to return.
        frozen_stages: -1 freezes nothing; 0 the stem; i >= 1 the stem and stages
            0..i-1 (eval mode and ``requires_grad=False``).
        norm_eval: keep BatchNorm layers in eval mode while training.
        init_cfg: ``dict(type='Pretrained', checkpoint=PATH_OR_URL[, prefix=...])``
            loads an official checkpoint with key conversion; other init_cfgs
            behave as in mmengine.
    """

    arch_zoo: Dict[str, dict] = {}
    essential_keys: Sequence[str] = ()
    arch_defaults: Dict[str, Any] = {}

    # Set by the subclass in __init__ (class-level so a missing one reads as None here).
    in_channels: Optional[int] = None
    num_features: Optional[List[int]] = None
    num_stages: Optional[int] = None

    def __init__(self,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 init_cfg: Optional[Union[dict, list]] = None):
        super().__init__(init_cfg=init_cfg)
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

    @classmethod
    def resolve_arch(cls, arch: Union[str, dict]) -> dict:
        """``arch`` (preset name/alias or dict) -> settings, by this class's ``arch_zoo``."""
        return resolve_arch(arch, cls.arch_zoo, cls.essential_keys, cls.__name__,
                            defaults=cls.arch_defaults)

    @property
    def out_channels(self) -> List[int]:
        """Channels of each returned map, in order (FPN / UPerHead ``in_channels``).

        The maps come in stage order (as mmdet's Swin), one per distinct out index.
        """
        return [self.num_features[i] for i in sorted(set(self.out_indices))]

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

    def _check_images(self, x: torch.Tensor) -> None:
        """A ValueError naming the problem and the fix unless ``x`` is (B>0, in_channels, H, W)."""
        name, channels = type(self).__name__, self.in_channels
        shape = tuple(x.shape)
        expected = f'{name} expects images of shape (B, {channels}, H, W), got {shape}'
        if x.dim() != 4:
            raise ValueError(f'{expected}: not a batch (N, {channels}, H, W) of images; add '
                             'the batch dimension (x[None] for a single image)')
        if x.shape[1] != channels:
            raise ValueError(
                f'{expected}: {x.shape[1]}-channel images where (N, {channels}, H, W) was '
                f"expected; convert grayscale images to {channels} channels (LoadImageFromFile("
                f"color_type='color') does) or build {name} with in_channels={x.shape[1]}")
        if x.shape[0] == 0:
            raise ValueError(f'{name} got an empty batch {shape}: no image to run on; '
                             'skip the forward pass when a batch has no images')

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
    def _stem_parts(self) -> List[Union[nn.Module, nn.Parameter]]:
        """What ``frozen_stages >= 0`` freezes: the stem (override)."""
        return []

    def _stage_parts(self, index: int) -> List[Union[nn.Module, nn.Parameter]]:
        """What ``frozen_stages > index`` freezes besides the stem: stage ``index`` (override)."""
        return []

    def _freeze_stages(self) -> None:
        """Freeze the stem if ``frozen_stages >= 0``, and stages ``0..frozen_stages-1``."""
        if self.frozen_stages >= 0:
            self._freeze(*self._stem_parts())
        for i in range(self.frozen_stages):
            self._freeze(*self._stage_parts(i))

    @staticmethod
    def _freeze(*parts: Union[nn.Module, nn.Parameter, None]) -> None:
        """Eval mode and ``requires_grad=False`` for modules; ``requires_grad=False`` for
        bare parameters; None is skipped."""
        for part in parts:
            if isinstance(part, nn.Parameter):
                part.requires_grad = False
            elif part is not None:
                part.eval()
                for p in part.parameters():
                    p.requires_grad = False

    def train(self, mode: bool = True) -> 'DenseBackbone':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

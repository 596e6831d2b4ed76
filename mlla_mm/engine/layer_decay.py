"""Layer-wise learning-rate decay (BEiT / ViTDet / Vim seg recipe) for plain backbones.

Layer ids, for a backbone with ``num_layers`` blocks under ``backbone.layers``:

* 0: ``backbone.patch_embed.*``, ``backbone.pos_embed``, ``backbone.cls_token``;
* i + 1: ``backbone.layers.i.*``;
* ``num_layers + 1``: everything else (the backbone's adapter ``fpn1..4`` and ``norm_f``,
  the neck, the heads).

A parameter with layer id ``k`` gets ``lr = base_lr * rate ** (num_layers + 1 - k)``.

This fixes the upstream Vim seg constructor, which keys on ``backbone.blocks.*`` (Vim's
blocks are ``backbone.layers.*``, so every block got scale 1) and decays ``pos_embed``
(its no-decay name test misses the ``backbone.`` prefix) and the 2-D ``A_log``.
"""
import re
from typing import Dict, List, Optional, Sequence

from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from torch import nn

from ..registry import register_optim_wrapper_constructor

EMBED_NAMES = ('patch_embed', 'pos_embed', 'cls_token', 'absolute_pos_embed')
# Parameters that never get weight decay, matched on the last name component, in
# addition to every 1-D parameter (biases, norm weights, D) and every ``*.bias``.
DEFAULT_NO_DECAY = ('pos_embed', 'cls_token', 'absolute_pos_embed', 'A_log', 'A_b_log',
                    'A_logs', 'D', 'D_b', 'Ds')
_LAYER = re.compile(r'^layers\.(\d+)\.')


@register_optim_wrapper_constructor()
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Optimizer-wrapper constructor with layer-wise lr decay and a proper no-decay set.

    ``paramwise_cfg`` keys:

    - ``layer_decay_rate`` (float, required): the per-layer lr factor, e.g. 0.92 for
      Vim-T UperNet, 0.837 for ViTDet-style detection.
    - ``num_layers`` (int, optional): number of blocks; by default the length of
      ``model.backbone.layers`` (of ``model.layers`` when the model is a bare backbone).
    - ``no_decay_names`` (sequence of str, optional): last name components that get
      no weight decay, default :data:`DEFAULT_NO_DECAY`; 1-D parameters and biases
      never get weight decay.

    Each param group carries ``lr``, ``weight_decay`` (0 or the base value),
    ``layer_id``, ``lr_scale`` and ``param_names`` (for logging and tests).

    Args:
        optim_wrapper_cfg: as :class:`mmengine.optim.DefaultOptimWrapperConstructor`.
        paramwise_cfg: see above.
    """

    KNOWN_KEYS = ('layer_decay_rate', 'num_layers', 'no_decay_names')

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None):
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        cfg = self.paramwise_cfg
        if 'layer_decay_rate' not in cfg:
            raise ValueError('LayerDecayOptimWrapperConstructor needs paramwise_cfg='
                             'dict(layer_decay_rate=...), e.g. 0.92')
        self.layer_decay_rate = float(cfg['layer_decay_rate'])
        if not 0 < self.layer_decay_rate <= 1:
            raise ValueError(f'layer_decay_rate must be in (0, 1], got {self.layer_decay_rate}')
        self.num_layers = cfg.get('num_layers')
        self.no_decay_names = tuple(cfg.get('no_decay_names', DEFAULT_NO_DECAY))
        if self.base_lr is None:
            raise ValueError('LayerDecayOptimWrapperConstructor: optimizer needs an lr')

    def _validate_cfg(self) -> None:
        unknown = set(self.paramwise_cfg or {}) - set(self.KNOWN_KEYS)
        if unknown:
            raise ValueError(f'LayerDecayOptimWrapperConstructor: unsupported paramwise_cfg keys '
                             f'{sorted(unknown)}; it understands {list(self.KNOWN_KEYS)}')
        super()._validate_cfg()

    # -- layer ids -------------------------------------------------------------
    @staticmethod
    def _backbone_prefix(model: nn.Module) -> str:
        return 'backbone.' if hasattr(model, 'backbone') else ''

    @staticmethod
    def infer_num_layers(model: nn.Module) -> int:
        backbone = getattr(model, 'backbone', model)
        layers = getattr(backbone, 'layers', None)
        if not isinstance(layers, (nn.ModuleList, nn.Sequential)):
            raise ValueError(f'LayerDecayOptimWrapperConstructor: cannot find the blocks of '
                             f'{type(backbone).__name__} (no `layers` ModuleList); pass '
                             'paramwise_cfg=dict(num_layers=...)')
        return len(layers)

    def layer_id(self, name: str, num_layers: int, prefix: str) -> int:
        if not name.startswith(prefix):
            return num_layers + 1
        local = name[len(prefix):]
        if local.split('.')[0] in EMBED_NAMES:
            return 0
        match = _LAYER.match(local)
        if match:
            index = int(match.group(1))
            if index >= num_layers:
                raise ValueError(f'LayerDecayOptimWrapperConstructor: {name} is block {index} '
                                 f'but num_layers is {num_layers}')
            return index + 1
        return num_layers + 1

    def is_no_decay(self, name: str, param: nn.Parameter) -> bool:
        return (param.ndim <= 1 or name.endswith('.bias')
                or name.split('.')[-1] in self.no_decay_names
                or getattr(param, '_no_weight_decay', False))

    # -- groups ------------------------------------------------------------------
    def add_params(self, params: List[dict], module: nn.Module, prefix: str = '',
                   is_dcn_module=None) -> None:
        num_layers = self.num_layers or self.infer_num_layers(module)
        backbone_prefix = self._backbone_prefix(module)
        groups: Dict[str, dict] = {}
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue  # frozen
            layer_id = self.layer_id(name, num_layers, backbone_prefix)
            no_decay = self.is_no_decay(name, param)
            key = f'layer_{layer_id}_{"no_decay" if no_decay else "decay"}'
            if key not in groups:
                scale = self.layer_decay_rate ** (num_layers + 1 - layer_id)
                group = dict(params=[], param_names=[], layer_id=layer_id, lr_scale=scale,
                             lr=self.base_lr * scale)
                if self.base_wd is not None:
                    group['weight_decay'] = 0.0 if no_decay else self.base_wd
                groups[key] = group
            groups[key]['params'].append(param)
            groups[key]['param_names'].append(name)
        ordered = sorted(groups.values(), key=lambda g: (g['layer_id'], g.get('weight_decay', 0)))
        params.extend(ordered)
        print_log(f'layer decay: rate {self.layer_decay_rate}, {num_layers} layers, '
                  f'{len(ordered)} param groups', logger='current')


def describe_groups(param_groups: Sequence[dict]) -> Dict[str, dict]:
    """{param name: {'lr':..., 'weight_decay':..., 'layer_id':...}} for inspection."""
    out = {}
    for group in param_groups:
        for name in group.get('param_names', []):
            out[name] = dict(lr=group['lr'], weight_decay=group.get('weight_decay'),
                             layer_id=group.get('layer_id'))
    return out

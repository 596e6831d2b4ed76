"""VM-UNet + MHS as an mmseg segmentor that also reads the official MHS-VM files."""
from mmengine.logging import print_log
from mmseg.models.segmentors import EncoderDecoder

from ...registry import register_model
from ...utils.checkpoint import CheckpointError
from ..backbones.vmunet import convert_mhsvm_checkpoint


@register_model()
class VMUNetSegmentor(EncoderDecoder):
    """mmseg's ``EncoderDecoder`` (backbone :class:`~mlla_mm.models.backbones.VMUNet`, head
    :class:`~mlla_mm.models.segmentors.VMUNetHead`) that loads MHS-VM's released files.

    A state dict in upstream's layout (``vmunet.*`` keys: ``best_3h.pth``, ``best_4h.pth``,
    plain ``model.state_dict()`` files) is recognised while loading -- through
    ``tools/test.py CONFIG best_4h.pth``, ``load_from`` or ``load_state_dict`` -- and renamed:
    ``vmunet.X`` -> ``backbone.X``, ``vmunet.final_conv.*`` -> ``decode_head.conv_seg.*``; the
    aliased duplicates (``mhs.x_ssproj_W``, ``scanhead_*.scanning.seq2seq_engine.*``) are
    dropped with a note. Everything else is strict: a key left over or missing raises
    :class:`~mlla_mm.utils.checkpoint.CheckpointError` (e.g. a 3-head file into a 4-head
    config). Files written by our own training load as usual.
    """

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs):
        official = [k for k in state_dict if k.startswith(prefix + 'vmunet.')]
        if official:
            entries = {k[len(prefix):]: state_dict.pop(k) for k in official}
            backbone, classifier = convert_mhsvm_checkpoint(entries)
            converted = {**{f'backbone.{k}': v for k, v in backbone.items()},
                         **{f'decode_head.{k}': v for k, v in classifier.items()}}
            own = set(self.state_dict())
            missing = sorted(own - set(converted))
            unexpected = sorted(set(converted) - own)
            if missing or unexpected:
                raise CheckpointError(
                    f'an MHS-VM file does not match this model: {len(missing)} missing keys '
                    f'{missing[:6]}, {len(unexpected)} unexpected keys {unexpected[:6]} (a '
                    '3-head file needs arch="3h", a 4-head file arch="4h")')
            state_dict.update({prefix + k: v for k, v in converted.items()})
            print_log(f'loaded an MHS-VM file: {len(official)} entries, {len(converted)} '
                      'tensors after dropping the aliases', logger='current')
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                      missing_keys, unexpected_keys, error_msgs)

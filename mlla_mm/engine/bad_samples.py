"""SkipBadSamplesHook: a training sample that cannot be used is skipped, with a warning.

Without it, one missing or undecodable image ends a days-long run with a traceback from
deep inside a dataloader worker, and a segmentation map with a label beyond the classes
crashes the loss (``Target 199 is out of bounds``) or, on a GPU, raises a device-side
assert. With it, such a sample is replaced by a random other one (reproducibly, under
:class:`ExactResumeHook`) and a warning names its files, once per sample; past
``max_bad_samples`` distinct bad samples (counted over all dataloader workers) training
stops with an error that says how many failed, the last file and its error, and points
to ``tools/check_dataset.py``, which lists every problem before training.

Validation and test data are not touched: a metric over silently fewer images would be
wrong, so there a bad sample still fails loudly.
"""
from mmengine.hooks import Hook

from ..registry import register_hook
from .train_data import guarded_train_dataloader


@register_hook()
class SkipBadSamplesHook(Hook):
    """Skip training samples that fail to load (see module docstring).

    Args:
        max_bad_samples (int): how many distinct bad samples to skip in a run before
            stopping with an error. Default 20: a few corrupt files in a large dataset
            are survivable, a wrong path or a broken pipeline (every sample failing)
            stops within seconds.
        check_seg_labels (bool): also reject semantic-segmentation samples whose label
            map holds values outside ``0 .. num_classes - 1`` and ``ignore_index`` (after
            ``reduce_zero_label``). Default True; costs one comparison per pixel.
        ignore_index (int): the label the loss ignores. Default 255 (mmseg's).
    """
    priority = 'VERY_HIGH'

    def __init__(self, max_bad_samples: int = 20, check_seg_labels: bool = True,
                 ignore_index: int = 255) -> None:
        if not isinstance(max_bad_samples, int) or max_bad_samples < 0:
            raise ValueError(f'SkipBadSamplesHook: max_bad_samples must be an integer >= 0, '
                             f'got {max_bad_samples!r}')
        self.max_bad_samples = max_bad_samples
        self.check_seg_labels = check_seg_labels
        self.ignore_index = ignore_index

    def configure_train_data(self, runner, settings) -> None:
        settings.max_bad_samples = self.max_bad_samples
        if self.check_seg_labels:  # applies to samples that carry a gt_sem_seg
            classes = (getattr(runner.train_dataloader.dataset, 'metainfo', None)
                       or {}).get('classes')
            if classes:
                settings.seg_num_classes = len(classes)
                settings.seg_ignore_index = self.ignore_index

    def before_train(self, runner) -> None:
        guarded_train_dataloader(runner)

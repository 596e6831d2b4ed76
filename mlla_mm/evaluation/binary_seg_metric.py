"""The pixel metrics of binary (lesion) segmentation as MHS-VM / VM-UNet report them."""
from collections import OrderedDict
from typing import Dict, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from ..registry import register_metric

BINARY_METRICS = ('IoU', 'Dice', 'Accuracy', 'Sensitivity', 'Specificity')


@register_metric()
class BinarySegMetric(BaseMetric):
    """Foreground IoU, Dice, accuracy, sensitivity and specificity, pooled over all pixels.

    The confusion counts TP, FP, FN, TN of the foreground class are summed over every pixel
    of every image (not averaged per image), as upstream's ``engine.py``:
    ``IoU = TP / (TP + FP + FN)`` (reported upstream as "miou": the foreground IoU, not a
    class mean), ``Dice = 2TP / (2TP + FP + FN)``, ``Accuracy = (TP + TN) / all``,
    ``Sensitivity = TP / (TP + FN)``, ``Specificity = TN / (TN + FP)``; a metric whose
    denominator is 0 is 0 (as upstream). Values are percentages, like mmseg's metrics.

    The prediction is ``pred_sem_seg`` (mmseg thresholds a single-channel model's sigmoid at
    the decode head's ``threshold``, 0.5 here as upstream); pixels whose label is
    ``ignore_index`` are left out.

    Args:
        foreground (int): label of the foreground class. Default: 1.
        ignore_index (int): label of pixels to leave out. Default: 255.
        collect_device (str): 'cpu' or 'gpu', for distributed collection. Default: 'cpu'.
        prefix (str, optional): prefix of the metric names. Default: None.
    """

    default_prefix = ''   # plain names ('IoU', 'Dice', ...), as mmseg's metrics

    def __init__(self, foreground: int = 1, ignore_index: int = 255,
                 collect_device: str = 'cpu', prefix=None, **kwargs):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.foreground = foreground
        self.ignore_index = ignore_index

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            pred = sample['pred_sem_seg']['data'].squeeze() == self.foreground
            label = sample['gt_sem_seg']['data'].squeeze().to(pred.device)
            if pred.shape != label.shape:
                raise ValueError(f'BinarySegMetric: prediction {tuple(pred.shape)} and label '
                                 f'{tuple(label.shape)} differ in size ({sample.get("img_path")})')
            valid = label != self.ignore_index
            truth = (label == self.foreground) & valid
            pred = pred & valid
            tp = int((pred & truth).sum())
            fp = int(pred.sum()) - tp
            fn = int(truth.sum()) - tp
            tn = int(valid.sum()) - tp - fp - fn
            self.results.append((tp, fp, fn, tn))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        tp, fp, fn, tn = (int(v) for v in np.sum(np.asarray(results, np.int64), axis=0))

        def ratio(num, den):
            return round(100.0 * num / den, 2) if den else 0.0

        metrics = OrderedDict(IoU=ratio(tp, tp + fp + fn), Dice=ratio(2 * tp, 2 * tp + fp + fn),
                              Accuracy=ratio(tp + tn, tp + fp + fn + tn),
                              Sensitivity=ratio(tp, tp + fn), Specificity=ratio(tn, tn + fp))
        print_log('binary segmentation, pooled over pixels: ' + ', '.join(
            f'{k} {v:.2f}' for k, v in metrics.items()) + f' (TP {tp}, FP {fp}, FN {fn}, TN {tn})',
            logger='current')
        return dict(metrics)

"""Pictures: predictions drawn on images (beside the ground truth when there is one) and
training curves from an mmengine run's ``vis_data/scalars.json``.

Drawing uses mmdet's ``DetLocalVisualizer`` (masks, boxes, class names), mmseg's
``SegLocalVisualizer`` (colour overlays with class names) and mmpose's
``PoseLocalVisualizer`` (keypoints and skeletons of every person); binary masks are drawn as
``image | ground truth | prediction`` panels; the plot uses matplotlib.
"""
import glob
import json
import math
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np

_TITLE_HEIGHT = 22


def _keeping_visualizer(base):
    """``base`` whose ``add_image`` keeps the picture instead of sending it to storage
    backends: mmseg's ``add_datasample`` never sets it as the current image."""

    class PictureVisualizer(base):
        last_drawn = None

        def add_image(self, name, image, step=0):
            self.last_drawn = image

    PictureVisualizer.__name__ = f'Picture{base.__name__}'
    return PictureVisualizer


def make_visualizer(model, name: str = 'mlla_mm_pictures'):
    """A visualizer for ``model`` (from :func:`mlla_mm.utils.inference.init_model`)."""
    if model.codebase == 'mmdet':
        from mmdet.visualization import DetLocalVisualizer as base
    elif model.codebase == 'mmpose':
        from mmpose.visualization import PoseLocalVisualizer as base
    else:
        from mmseg.visualization import SegLocalVisualizer as base
    visualizer_type = _VISUALIZERS.setdefault(base, _keeping_visualizer(base))
    # visualizers are named singletons: reuse one of this name if it exists
    if visualizer_type.check_instance_created(name):
        visualizer = visualizer_type.get_instance(name)
    elif model.codebase == 'mmpose':
        # mmpose 1.3.2's OpenCV drawing calls int() on 1-element arrays, an error since
        # numpy 2.4; its matplotlib drawing (mmengine's) works
        visualizer = visualizer_type(name=name, alpha=0.8, radius=2, line_width=2,
                                     backend='matplotlib')
    else:
        visualizer = visualizer_type(name=name, alpha=0.5)
    if model.codebase == 'mmpose':
        # keypoint / link colours and the skeleton come with the dataset's meta
        visualizer.set_dataset_meta(model.dataset_meta)
    else:
        visualizer.dataset_meta = model.dataset_meta
    return visualizer


_VISUALIZERS: dict = {}


def _title_strip(width: int, titles: Sequence[str]) -> np.ndarray:
    """A white band with ``titles`` centred over equal-width panels (RGB)."""
    import cv2
    strip = np.full((_TITLE_HEIGHT, width, 3), 255, np.uint8)
    panel = width // len(titles)
    for i, title in enumerate(titles):
        (w, _), _ = cv2.getTextSize(title, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        x = i * panel + max((panel - w) // 2, 2)
        cv2.putText(strip, title, (x, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return strip


def draw_sample(visualizer, image_bgr: np.ndarray, sample, with_gt: bool,
                score_thr: float = 0.3, titles: bool = True) -> np.ndarray:
    """The drawn picture (RGB): ``ground truth | prediction`` when ``with_gt``, else the
    prediction alone, with a title band. ``score_thr``: the least score of a drawn box
    (detection) or keypoint (pose)."""
    image = np.ascontiguousarray(image_bgr[..., ::-1])
    has_gt = with_gt and any(k in sample for k in ('gt_instances', 'gt_sem_seg'))
    kwargs = dict(draw_gt=has_gt, draw_pred=True, show=False)
    if is_pose_sample(sample):
        kwargs.update(kpt_thr=score_thr, draw_bbox=True)
    elif 'pred_instances' in sample:
        kwargs['pred_score_thr'] = score_thr
    visualizer.last_drawn = None
    visualizer.add_datasample('image', image, data_sample=sample, **kwargs)
    drawn = visualizer.last_drawn
    if titles:
        names = ['ground truth', 'prediction'] if has_gt else ['prediction']
        drawn = np.concatenate([_title_strip(drawn.shape[1], names), drawn], axis=0)
    return drawn


def is_pose_sample(sample) -> bool:
    """Whether ``sample`` holds keypoints (an mmpose ``PoseDataSample``)."""
    return 'pred_instances' in sample and 'keypoints' in sample.pred_instances


def merge_pose_samples(samples):
    """One sample per image from a top-down model's per-person samples of that image."""
    from mmpose.structures import merge_data_samples
    return merge_data_samples(list(samples))


def draw_binary_masks(image_bgr: np.ndarray, sample, titles: bool = True) -> np.ndarray:
    """``image | ground-truth mask | predicted mask`` (RGB) for binary segmentation: the
    masks white (foreground) on black, the prediction's mistakes tinted (red: false
    positive, blue: missed foreground) when the ground truth is known."""
    image = np.ascontiguousarray(image_bgr[..., ::-1])
    pred = sample.pred_sem_seg.data.squeeze(0).cpu().numpy() == 1
    panels, names = [image], ['image']
    gt = None
    if 'gt_sem_seg' in sample:
        gt = sample.gt_sem_seg.data.squeeze(0).cpu().numpy() == 1
        panels.append(np.repeat(gt[..., None] * 255, 3, axis=2).astype(np.uint8))
        names.append('ground truth')
    drawn = np.repeat(pred[..., None] * 255, 3, axis=2).astype(np.uint8)
    if gt is not None and gt.shape == pred.shape:
        drawn[pred & ~gt] = (230, 60, 60)
        drawn[~pred & gt] = (60, 90, 230)
    panels.append(drawn)
    names.append('prediction')
    gap = np.full((image.shape[0], 4, 3), 255, np.uint8)
    row = np.concatenate([x for p in panels for x in (p, gap)][:-1], axis=1)
    if titles:
        row = np.concatenate([_title_strip(row.shape[1], names), row], axis=0)
    return row


def save_rgb(image_rgb: np.ndarray, path: str, jpeg_quality: int = 85) -> str:
    import cv2
    import mmcv
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if path.lower().endswith(
        ('.jpg', '.jpeg')) else None
    if not mmcv.imwrite(np.ascontiguousarray(image_rgb[..., ::-1]), path, params=params):
        raise OSError(f'could not write {path}')
    return path


def stack(images: Sequence[np.ndarray], max_width: Optional[int] = None,
          gap: int = 4) -> np.ndarray:
    """Pictures one above the other (padded to a common width), optionally shrunk."""
    import mmcv
    width = max(im.shape[1] for im in images)
    rows = []
    for im in images:
        pad = np.full((im.shape[0], width - im.shape[1], 3), 255, np.uint8)
        rows += [np.concatenate([im, pad], axis=1), np.full((gap, width, 3), 255, np.uint8)]
    grid = np.concatenate(rows[:-1], axis=0)
    if max_width and width > max_width:
        grid = mmcv.imrescale(grid, max_width / width)
    return grid


# -- training curves ------------------------------------------------------------------------
_NOT_METRICS = {'step', 'epoch', 'iter', 'time', 'data_time', 'lr', 'memory', 'base_lr'}


def find_scalars(work_dir: str) -> str:
    """The ``scalars.json`` of the latest training run under ``work_dir``."""
    candidates = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')),
                        key=osp.getmtime)
    for path in reversed(candidates):
        with open(path) as f:
            if any('loss' in json.loads(line) for line in f if line.strip()):
                return path
    raise FileNotFoundError(f'no training log (*/vis_data/scalars.json with losses) under '
                            f'{work_dir}; the config needs LocalVisBackend in vis_backends')


def read_scalars(path: str):
    """``(train_rows, eval_rows)`` of an mmengine ``scalars.json``."""
    train, evals = [], []
    with open(path) as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                (train if 'loss' in row else evals).append(row)   # mmengine logs 'loss'
    return train, evals


def loss_keys(train_rows) -> List[str]:
    """The loss terms logged (mmdet: loss, loss_cls, ...; mmseg: loss, decode.loss_ce ...),
    the total first."""
    return sorted({k for row in train_rows for k in row if k.split('.')[-1].startswith('loss')},
                  key=lambda k: (k != 'loss', k))


def plot_training_curves(scalars: str, out_file: str, metric_keys: Optional[Sequence[str]] = None,
                         before_training: Optional[Dict[str, float]] = None,
                         title: str = '') -> str:
    """Losses per iteration (left) and evaluation metrics per evaluation (right).

    Args:
        scalars: an mmengine ``vis_data/scalars.json``.
        metric_keys: metrics to plot (default: every numeric evaluation key).
        before_training: metrics of the untrained model, plotted at step 0.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    train, evals = read_scalars(scalars)
    if not train:
        raise ValueError(f'{scalars} has no training losses')
    by_epoch = 'epoch' in train[0]
    losses = loss_keys(train)
    if metric_keys is None:
        metric_keys = sorted({k for row in evals for k, v in row.items()
                              if k not in _NOT_METRICS and isinstance(v, (int, float))})
    metric_keys = [k for k in metric_keys
                   if any(k in row for row in evals) or k in (before_training or {})]

    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(11, 4))
    steps = [row.get('iter', row['step']) for row in train]
    for key in losses:
        values = [row.get(key, math.nan) for row in train]
        ax_loss.plot(steps, values, label=key, linewidth=2.2 if key == 'loss' else 1.0)
    ax_loss.set_xlabel('iteration')
    ax_loss.set_ylabel('loss')
    ax_loss.set_yscale('log')
    ax_loss.set_title('training losses')
    ax_loss.grid(alpha=0.3)
    ax_loss.legend(fontsize=7)

    for key in metric_keys:
        points = [(0, before_training[key])] if before_training and key in before_training else []
        points += [(row['step'], row[key]) for row in evals if key in row]
        if points:
            xs, ys = zip(*points)
            ax_metric.plot(xs, ys, marker='o', label=key)
    ax_metric.set_xlabel('epoch' if by_epoch else 'iteration')
    ax_metric.set_title('evaluation' + (' (step 0 = untrained)' if before_training else ''))
    ax_metric.grid(alpha=0.3)
    if metric_keys:
        ax_metric.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    fig.savefig(out_file, dpi=90)
    plt.close(fig)
    return out_file


def pick_evenly(n_items: int, n: int) -> List[int]:
    """``n`` indices spread over ``range(n_items)``."""
    if n_items <= n:
        return list(range(n_items))
    return [round(i * (n_items - 1) / (n - 1)) for i in range(n)] if n > 1 else [0]

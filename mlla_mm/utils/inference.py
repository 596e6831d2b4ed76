"""Run a trained detector/segmentor on images and turn its predictions into files.

Used by ``tools/infer.py`` (any images) and ``tools/demo.py`` (validation images, drawn
beside their ground truth). Needs mmdet for detection configs, mmseg for segmentation
ones, mmpose for pose ones (chosen from the config's ``default_scope``).
"""
import copy
import os
import os.path as osp
from typing import Optional, Union

import numpy as np
from mmengine.config import Config

from . import launch


class UnreadableImage(ValueError):
    """An input file that is not an image OpenCV can decode."""


def read_image(path: str) -> np.ndarray:
    """BGR uint8 image, or :class:`UnreadableImage` naming the file and why."""
    import mmcv
    if not osp.isfile(path):
        raise UnreadableImage(f'{path}: no such file')
    try:
        image = mmcv.imread(path, channel_order='bgr')
    except Exception as err:  # mmcv/cv2 raise assorted types for broken files
        raise UnreadableImage(f'{path}: cannot be decoded as an image ({err})') from err
    if image is None or image.size == 0:
        raise UnreadableImage(f'{path}: cannot be decoded as an image (empty, truncated or '
                              'not an image format OpenCV reads)')
    return image


def _dataset_metainfo(cfg: Config) -> dict:
    """classes/palette the config's test dataset declares (no annotation file read)."""
    from mmengine.registry import DATASETS
    dataset = copy.deepcopy(cfg.test_dataloader.dataset)
    dataset['lazy_init'] = True
    try:
        return dict(DATASETS.build(dataset).metainfo)
    except Exception:   # e.g. the data folder is not there: fall back to the config text
        return dict(dataset.get('metainfo') or {})


def init_model(config: Union[str, Config], checkpoint: Optional[str], device: str = 'cpu',
               cfg_options: Optional[dict] = None):
    """The model of ``config`` with ``checkpoint``'s weights (``None``/``'none'``: as built),
    in eval mode; ``model.codebase`` is ``'mmdet'``, ``'mmseg'`` or ``'mmpose'``.

    Class names and palette come from the checkpoint's ``dataset_meta`` (as written by
    training), else from the config's test dataset.
    """
    cfg = launch.load_config(config, cfg_options) if isinstance(config, str) else config
    codebase = launch.codebase_of(cfg)
    if checkpoint is not None and checkpoint.lower() == 'none':
        checkpoint = None
    if checkpoint is not None and '://' not in checkpoint and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint!r} not found')
    import warnings
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='.*(dataset_meta|checkpoint is None|COCO '
                                'classes|palette does not exist|No suitable dataset).*')
        if codebase == 'mmdet':
            from mmdet.apis import init_detector
            model = init_detector(cfg, checkpoint, device=device)
        elif codebase == 'mmpose':
            from mmpose.apis import init_model as init_pose_estimator
            model = init_pose_estimator(cfg, checkpoint, device=device)
        else:
            from mmseg.apis import init_model as init_segmentor
            model = init_segmentor(cfg, checkpoint, device=device)
    meta = _dataset_metainfo(cfg)
    saved = dict(getattr(model, 'dataset_meta', None) or {})
    if checkpoint is None or not saved.get('classes'):
        saved.update(meta)          # no trained weights: the config's classes, not COCO's
    elif saved.get('palette') in (None, 'random') and meta.get('palette') \
            and len(meta.get('classes', ())) == len(saved['classes']):
        saved['palette'] = meta['palette']
    model.dataset_meta = saved
    model.codebase = codebase
    return model


def _det_pipeline(model):
    from mmcv.transforms import Compose
    from mmdet.utils import get_test_pipeline_cfg
    steps = [t for t in get_test_pipeline_cfg(model.cfg.copy())
             if not t['type'].split('.')[-1] == 'LoadAnnotations']
    steps[0] = dict(steps[0], type='mmdet.LoadImageFromNDArray')
    return Compose(steps)


def predict(model, image: np.ndarray):
    """The data sample (``pred_instances`` or ``pred_sem_seg``) for one BGR image."""
    if model.codebase == 'mmdet':
        from mmdet.apis import inference_detector
        if not hasattr(model, '_mlla_pipeline'):
            model._mlla_pipeline = _det_pipeline(model)
        return inference_detector(model, image, test_pipeline=model._mlla_pipeline)
    from mmseg.apis import inference_model
    return inference_model(model, image)


# -- machine-readable results ---------------------------------------------------------------
def mask_to_rle(mask: np.ndarray) -> dict:
    """COCO run-length encoding of a binary HxW mask (``{'size': [h, w], 'counts': str}``)."""
    from pycocotools import mask as mask_util
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    return dict(size=[int(s) for s in rle['size']], counts=rle['counts'].decode('ascii'))


def detections_to_dict(sample, classes, score_thr: float = 0.0) -> dict:
    """Boxes (x1, y1, x2, y2 in input pixels), scores, labels, class names and RLE masks."""
    pred = sample.pred_instances
    keep = (pred.scores >= score_thr).cpu().numpy()
    boxes = pred.bboxes.cpu().numpy()[keep]
    scores = pred.scores.cpu().numpy()[keep]
    labels = pred.labels.cpu().numpy()[keep]
    result = dict(
        image_size=[int(v) for v in sample.ori_shape],   # (height, width)
        boxes=[[round(float(v), 2) for v in box] for box in boxes],
        scores=[round(float(s), 4) for s in scores],
        labels=[int(v) for v in labels],
        label_names=[str(classes[v]) if v < len(classes) else str(v) for v in labels])
    if 'masks' in pred:
        masks = pred.masks
        masks = masks.cpu().numpy() if hasattr(masks, 'cpu') else np.asarray(masks)
        result['masks'] = [mask_to_rle(m) for m in masks[keep]]
    return result


def save_label_map(sample, path: str) -> np.ndarray:
    """Write the predicted segmentation as a PNG of class indices; return the map."""
    import mmcv
    label = sample.pred_sem_seg.data.squeeze(0).cpu().numpy()
    label = label.astype(np.uint8 if label.max(initial=0) < 256 else np.uint16)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    if not mmcv.imwrite(label, path):
        raise OSError(f'could not write {path}')
    return label

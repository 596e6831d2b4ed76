"""ISIC 2017 / 2018 lesion segmentation in the folder layout of VM-UNet and MHS-VM (mmseg).

Upstream reads ``<root>/{train,val}/{images,masks}/`` (the "val" split is ISIC's test set:
VM-UNet splits each challenge's training set 7:3, ISIC17 1500 / 650 images, ISIC18 1886 /
808). Here an image ``<stem>.jpg`` is paired with the mask of the same stem,
``<stem>_segmentation.png`` -- the challenges' own file names -- and any other naming is set
with ``img_suffix`` / ``seg_map_suffix`` (a missing mask is an error naming the file).

Also the two transforms the ISIC recipe needs:

* :class:`LoadBinaryMask` reads a mask (0/255, grey or colour) as labels {0, 1}: foreground
  where ``value / 255 >= threshold`` (0.5, upstream's ``msk / 255`` then ``>= 0.5``).
* :class:`MinMaxNormalize` is upstream's "per-dataset normalisation" (``myNormalize``):
  ``(img - mean) / std`` with the dataset's statistics, then stretched to [0, 255] by the
  image's own min and max. The stretch cancels any positive affine map, so what reaches the
  network is the image min-max stretched to [0, 255] whatever the dataset's mean and std:
  the transform does exactly that (and the data preprocessor then leaves it, mean 0, std 1).

Needs mmseg (and mmcv), so ``import mlla_mm`` leaves it out: configs name it in
``custom_imports`` (the ``vmunet_mhs_*`` configs do).
"""
import os.path as osp
from typing import List

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine import fileio
from mmseg.datasets import BaseSegDataset

from ..registry import register_dataset, register_transform

#: class names and drawing colours (RGB) of the binary datasets
ISIC_CLASSES = ('background', 'lesion')
ISIC_PALETTE = [[0, 0, 0], [230, 60, 60]]


@register_dataset()
class ISICDataset(BaseSegDataset):
    """ISIC 2017/2018 skin-lesion segmentation: background 0, lesion 1.

    Args:
        img_suffix (str): image file suffix. Default: '.jpg'.
        seg_map_suffix (str): what replaces ``img_suffix`` in the mask's file name.
            Default: '_segmentation.png' (ISIC's naming).
        data_prefix (dict): ``img_path`` and ``seg_map_path`` under ``data_root``;
            upstream's layout is ``train/images`` + ``train/masks`` and ``val/images`` +
            ``val/masks``.
        **kwargs: the arguments of mmseg's ``BaseSegDataset``.
    """

    METAINFO = dict(classes=ISIC_CLASSES, palette=ISIC_PALETTE)

    def __init__(self, img_suffix: str = '.jpg', seg_map_suffix: str = '_segmentation.png',
                 data_prefix: dict = dict(img_path='val/images', seg_map_path='val/masks'),
                 **kwargs):
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         data_prefix=data_prefix, **kwargs)

    def load_data_list(self) -> List[dict]:
        img_dir = self.data_prefix.get('img_path', '')
        if not osp.isdir(img_dir):
            raise FileNotFoundError(
                f'ISICDataset: no image folder {img_dir!r}. Expected the VM-UNet / MHS-VM layout '
                '<data_root>/{train,val}/{images,masks}/ (see docs/mhs_vm.md, "ISIC data"); '
                'set data_root (--data-root) and data_prefix.')
        data_list = super().load_data_list()
        if not data_list:
            raise FileNotFoundError(f'ISICDataset: no {self.img_suffix!r} images in {img_dir!r}; '
                                    'set img_suffix to the images\' suffix')
        for info in data_list:
            path = info.get('seg_map_path')
            if path is not None and not fileio.exists(path, backend_args=self.backend_args):
                raise FileNotFoundError(
                    f'ISICDataset: no mask {path!r} for image {info["img_path"]!r}: masks are '
                    f'named <stem>{self.seg_map_suffix} (set seg_map_suffix to your naming)')
        return data_list


@register_transform()
class LoadBinaryMask(BaseTransform):
    """Read the mask at ``seg_map_path`` as labels {0, 1} into ``gt_seg_map``.

    Masks may be grey or colour images (colour ones are converted to grey); pixels with
    ``value / 255 >= threshold`` are foreground.

    Args:
        threshold (float): Default: 0.5 (upstream).
        backend_args (dict, optional): file backend arguments.
    """

    def __init__(self, threshold: float = 0.5, backend_args=None):
        self.threshold = threshold
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        import mmcv
        path = results['seg_map_path']
        mask = mmcv.imfrombytes(fileio.get(path, backend_args=self.backend_args),
                                flag='grayscale', backend='cv2')
        if mask is None:
            raise ValueError(f'LoadBinaryMask: cannot decode the mask {path!r}')
        results['gt_seg_map'] = (mask >= self.threshold * 255).astype(np.uint8)
        results.setdefault('seg_fields', []).append('gt_seg_map')
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(threshold={self.threshold})'


@register_transform()
class MinMaxNormalize(BaseTransform):
    """Stretch each image to [0, 255] (float32) by its own minimum and maximum.

    Upstream MHS-VM / VM-UNet's ``myNormalize``: ``(img - mean) / std``, then
    ``(x - min x) / (max x - min x) * 255`` over the whole image; the per-dataset ``mean``
    and ``std`` (e.g. ISIC18 train 157.561 / 26.706) cancel in the stretch, so they are not
    arguments here. A constant image becomes all zeros.
    """

    def transform(self, results: dict) -> dict:
        img = results['img'].astype(np.float32)
        low, high = float(img.min()), float(img.max())
        results['img'] = (img - low) * (255.0 / (high - low)) if high > low else img * 0
        return results

"""Generator of the demo binary lesion dataset, in the ISIC 2017/2018 folder layout.

Each image is a skin-like background -- a skin tone, smooth illumination changes, a fine
grain, sometimes the dark round vignette of a dermoscope -- with one pigmented "lesion": a
blob whose border radius varies with the angle (a few random harmonics, an elliptic
stretch), whose pigment fades out over a soft rim, with darker blotches inside and a
contrast that ranges from faint to strong; a few dark hairs may cross the image (not part
of the mask). The mask is the lesion where its opacity reaches 1/2 -- the middle of the
soft rim -- so the border has to be inferred from a gradual change, as in dermoscopy.

Layout (upstream MHS-VM / VM-UNet read ``{train,val}/{images,masks}``; the file names are
ISIC's, an image ``X.jpg`` with its mask ``X_segmentation.png``, 0 / 255)::

    <root>/train/images/ISIC_0000001.jpg   <root>/train/masks/ISIC_0000001_segmentation.png
    <root>/val/images/ISIC_0000001.jpg     <root>/val/masks/ISIC_0000001_segmentation.png

Read by :class:`mlla_mm.datasets.isic.ISICDataset`. Deterministic: image ``i`` of a split
depends only on ``seed``, the split and ``i``; a stamp file records the arguments and a
second call with the same ones returns at once (``overwrite=True`` regenerates). Needs
numpy and OpenCV only.
"""
import math
import os
import os.path as osp
import time
from typing import Tuple

import numpy as np

from .demo_data import (_check_pair, _image_rng, _prepare_root, _size_stats, _write_jpeg,
                        _write_png, _write_stamp)

GENERATOR_VERSION = 1
#: The ISIC naming: image ``<stem>.jpg``, mask ``<stem>_segmentation.png``.
ISIC_IMAGE_SUFFIX = '.jpg'
ISIC_MASK_SUFFIX = '_segmentation.png'


def _smooth_field(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """A smooth random field in about [-1, 1]: coarse noise upsampled bicubically."""
    import cv2
    coarse = rng.standard_normal((cells + 1, cells + 1)).astype(np.float32)
    field = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return field / max(float(np.abs(field).max()), 1e-6)


def _hsv_rgb(h_deg: float, s: float, v: float) -> np.ndarray:
    import colorsys
    return np.array(colorsys.hsv_to_rgb((h_deg / 360.0) % 1.0, s, v), np.float32)


def _render_lesion(rng: np.random.Generator, width: int, height: int):
    """One (image uint8 (H, W, 3) RGB, mask bool (H, W), lesion fraction of the image)."""
    import cv2
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    short = min(width, height)
    # skin: a tone, slow illumination changes and a fine grain
    skin = _hsv_rgb(rng.uniform(8, 32), rng.uniform(0.18, 0.5), rng.uniform(0.62, 0.95))
    light = 1 + rng.uniform(0.05, 0.15) * _smooth_field(rng, height, width, 3)
    grain = cv2.GaussianBlur(rng.standard_normal((height, width)).astype(np.float32), (0, 0), 0.8)
    background = skin[None, None] * (light + 0.03 * grain)[..., None]
    # the lesion: a star-shaped blob with a wavy, stretched border
    cx = width * (0.5 + rng.uniform(-0.18, 0.18))
    cy = height * (0.5 + rng.uniform(-0.18, 0.18))
    r0 = short * rng.uniform(0.13, 0.33)
    stretch, tilt = rng.uniform(0.6, 1.0), rng.uniform(0, math.pi)
    dx, dy = xs - cx, ys - cy
    u = dx * math.cos(tilt) + dy * math.sin(tilt)
    v = (-dx * math.sin(tilt) + dy * math.cos(tilt)) / stretch
    theta, dist = np.arctan2(v, u), np.hypot(u, v)
    radius = np.ones_like(theta)
    for k in range(2, 8):
        radius += rng.uniform(0, 0.28 / k) * np.cos(k * theta + rng.uniform(0, 2 * math.pi))
    rho = dist / (r0 * radius)                          # < 1 inside the border
    rim = rng.uniform(0.08, 0.3)                        # width of the soft rim, in radii
    alpha = np.clip((1 - rho) / rim + 0.5, 0, 1)
    alpha = alpha * alpha * (3 - 2 * alpha)             # smooth step; 1/2 exactly at rho = 1
    mask = rho <= 1
    # pigment: brown, darker blotches inside, faint to strong
    pigment = _hsv_rgb(rng.uniform(12, 32), rng.uniform(0.35, 0.8), rng.uniform(0.15, 0.5))
    blotch = 0.5 + 0.5 * _smooth_field(rng, height, width, 6)
    lesion = pigment[None, None] * (1 - rng.uniform(0.1, 0.45) * blotch)[..., None]
    contrast = rng.uniform(0.45, 1.0)
    weight = (contrast * alpha)[..., None]
    image = background * (1 - weight) + lesion * light[..., None] * weight
    # a dermoscope's dark round vignette, sometimes
    if rng.random() < 0.4:
        ring = np.hypot((xs - width / 2) / (width / 2), (ys - height / 2) / (height / 2))
        edge = rng.uniform(0.95, 1.25)
        image *= np.clip(1 - (ring - edge) / 0.15, 0.08, 1)[..., None]
    image = np.clip(image * 255, 0, 255).astype(np.uint8)
    # hairs: thin dark curves over everything (not lesion)
    for _ in range(rng.integers(0, 4)):
        p0, p2 = rng.uniform(0, 1, 2) * (width, height), rng.uniform(0, 1, 2) * (width, height)
        p1 = (p0 + p2) / 2 + rng.normal(0, short / 5, 2)
        t = np.linspace(0, 1, 40)[:, None]
        curve = (1 - t) ** 2 * p0 + 2 * t * (1 - t) * p1 + t ** 2 * p2
        color = tuple(int(c) for c in rng.uniform(20, 70) * np.array([1.0, 0.8, 0.65]))
        cv2.polylines(image, [np.round(curve * 16).astype(np.int32)], False, color, 1,
                      lineType=cv2.LINE_AA, shift=4)
    return image, mask, float(mask.mean())


def generate_isic_lesions(root: str = 'data/demo_isic',
                          num_train: int = 200,
                          num_val: int = 50,
                          image_size: Tuple[int, int] = (192, 144),
                          seed: int = 0,
                          overwrite: bool = False) -> dict:
    """Write the demo lesion dataset in the ISIC layout (see the module docstring).

    Args:
        root (str): output directory (the ``data_root``).
        num_train (int): images in ``train/``.
        num_val (int): images in ``val/``.
        image_size (tuple[int, int]): ``(width, height)`` of every image, each >= 32.
        seed (int): seed; the same arguments give byte-identical files.
        overwrite (bool): regenerate even if ``root`` holds this output, and replace the
            generator's folders in a directory it did not write.

    Returns:
        dict: ``root``, ``generated``, ``seconds`` and per split the number of images and
        the lesion's share of the image (min / p10 / median / p90 / max, percent).
    """
    for name, n in (('num_train', num_train), ('num_val', num_val)):
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f'{name} must be a positive integer, got {n!r}')
    width, height = _check_pair('image_size (width, height)', image_size, 32, False)
    params = dict(kind='isic_lesions', version=GENERATOR_VERSION, num_train=int(num_train),
                  num_val=int(num_val), image_size=[width, height], seed=int(seed))
    start = time.perf_counter()
    found = _prepare_root(root, params, ['train', 'val'], overwrite)
    if found is not None:
        return dict(found, root=root, generated=False,
                    seconds=round(time.perf_counter() - start, 2))
    summary = dict(kind='isic_lesions', classes=['background', 'lesion'],
                   image_size=[width, height], seed=int(seed), splits={})
    # seed streams apart from the other demo datasets' (split ids 0-3)
    for split_id, (split, count) in enumerate((('train', num_train), ('val', num_val)),
                                              start=4):
        for sub in ('images', 'masks'):
            os.makedirs(osp.join(root, split, sub), exist_ok=True)
        shares = []
        for index in range(count):
            image, mask, share = _render_lesion(_image_rng(seed, split_id, index), width, height)
            stem = f'ISIC_{index + 1:07d}'
            _write_jpeg(osp.join(root, split, 'images', stem + ISIC_IMAGE_SUFFIX), image)
            _write_png(osp.join(root, split, 'masks', stem + ISIC_MASK_SUFFIX),
                       mask.astype(np.uint8) * 255)
            shares.append(100 * share)
        summary['splits'][split] = dict(images=count, lesion_percent=_size_stats(shares))
    _write_stamp(root, params, summary)
    return dict(summary, root=root, generated=True,
                seconds=round(time.perf_counter() - start, 2))

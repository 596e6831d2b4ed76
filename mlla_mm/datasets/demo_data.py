"""Generator of the two small demo datasets the project trains on without downloads.

Both datasets are drawn by one scene renderer: a background split into one to
three regions, each filled with a texture (smooth gradient, checkerboard tiles,
speckle noise or stripes), and one to five filled shapes (circle, square,
triangle, five-pointed star) of varied size, colour and rotation painted on top
of each other. Later shapes occlude earlier ones; a placement that would hide
more than half of an earlier shape, cut a hole into it or chop off a sliver is
rejected and redrawn, so every annotated object stays recognisable.

1. :func:`generate_coco_instance` writes an instance dataset in the real COCO
   layout, read unchanged by mmdet's ``CocoDataset`` and ``CocoMetric``::

       <root>/annotations/instances_train2017.json
       <root>/annotations/instances_val2017.json
       <root>/train2017/000000000001.jpg ...
       <root>/val2017/000000000001.jpg ...

   Each annotation holds the *visible* part of a shape: ``segmentation`` is a
   list of polygons traced around the visible mask (pycocotools rasterizes
   them back to exactly that mask), ``bbox`` is its ``[x, y, w, h]`` box,
   ``area`` its pixel count, ``iscrowd`` is 0. Category ids are 1..4 named by
   :data:`DEMO_DET_CLASSES`.

2. :func:`generate_ade20k_semantic` writes a semantic dataset in the ADE20K
   (``ADEChallengeData2016``) layout, read unchanged by mmseg's
   ``ADE20KDataset`` and ``IoUMetric``::

       <root>/images/training/ADE_train_00000001.jpg ...
       <root>/images/validation/ADE_val_00000001.jpg ...
       <root>/annotations/training/ADE_train_00000001.png ...
       <root>/annotations/validation/ADE_val_00000001.png ...

   The PNGs are 8-bit label maps in ADE20K's own numbering: 0 is "other"
   (ignored once ``reduce_zero_label=True`` maps it to 255; here it marks the
   2-pixel seams between background regions) and class ``i`` of ADE20K's 150
   is stored as ``i + 1``. mmseg only accepts a ``metainfo`` class override that
   is a *subset* of ADE20K's 150 names (it raises ``ValueError`` otherwise), so
   the eight demo classes borrow ADE20K names (:data:`DEMO_SEG_CLASSES`; the
   texture or shape each name stands for is in :data:`DEMO_SEG_CLASS_MEANING`).
   Hence both configs work on this data: a demo config passing
   ``metainfo=dict(classes=DEMO_SEG_CLASSES, palette=DEMO_SEG_PALETTE)`` trains
   an 8-class head (mmseg remaps the ids to 0..7), and the stock 150-class
   ADE20K config reads the same files with correct class ids.

Colour hints the class of a shape (each shape class draws its hue from its own
band, backgrounds are greyish) so that a short CPU run learns something; shape
is the other cue. Pass ``color_by_class=False`` for uniformly random hues.

Generation is deterministic: image ``i`` of a split depends only on ``seed``,
the split and ``i`` (not on the counts), so the same arguments give
byte-identical files. A stamp file (:data:`STAMP_NAME`) records the arguments;
calling again with the same arguments returns at once without rewriting, new
arguments regenerate, and ``overwrite=True`` forces regeneration. A non-empty
directory that this generator did not write is never touched unless
``overwrite=True`` (and even then only the generator's own paths are replaced).

Command line: ``python tools/dataset_converters/generate_demo_data.py``
writes ``data/demo_coco`` and ``data/demo_ade20k`` (see its ``--help``).

Only numpy, OpenCV (``cv2``, installed with mmcv) and the standard library are
used; ``cv2`` is imported when generating, so importing this module is cheap.
"""
import colorsys
import functools
import json
import math
import os
import os.path as osp
import shutil
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

# Bump when the renderer changes so that stale stamped outputs are regenerated.
GENERATOR_VERSION = 1
STAMP_NAME = 'demo_data_stamp.json'

#: Shape classes of the instance dataset (COCO category ids 1..4 in this order).
DEMO_DET_CLASSES: Tuple[str, ...] = ('circle', 'square', 'triangle', 'star')
#: One RGB colour per detection class, for visualisation.
DEMO_DET_PALETTE: List[Tuple[int, int, int]] = [(220, 20, 60), (0, 160, 60),
                                                (30, 80, 230), (250, 190, 0)]

#: Background textures, in the order of their semantic classes.
DEMO_TEXTURES: Tuple[str, ...] = ('gradient', 'checkerboard', 'noise', 'stripes')

#: Semantic classes: four background textures then the four shapes, named by
#: ADE20K classes so that ``ADE20KDataset`` accepts them as a ``metainfo``
#: override (see the module docstring).
DEMO_SEG_CLASSES: Tuple[str, ...] = ('sky', 'floor', 'grass', 'fence',
                                     'ball', 'box', 'tent', 'flower')
#: What each entry of :data:`DEMO_SEG_CLASSES` is in the images.
DEMO_SEG_CLASS_MEANING: Dict[str, str] = dict(
    zip(DEMO_SEG_CLASSES, DEMO_TEXTURES + DEMO_DET_CLASSES))
#: 0-based index of each :data:`DEMO_SEG_CLASSES` entry among ADE20K's 150
#: classes; the label PNGs store ``index + 1``.
DEMO_SEG_ADE20K_INDICES: Tuple[int, ...] = (2, 3, 9, 32, 119, 41, 114, 66)
#: One RGB colour per semantic class, for visualisation: ADE20K's colours for
#: the backgrounds, distinct ones for the shapes (ADE20K's 'box' colour is
#: nearly its 'grass' colour).
DEMO_SEG_PALETTE: List[List[int]] = [[6, 230, 230], [80, 50, 50], [4, 250, 7],
                                     [255, 184, 6], [255, 0, 163],
                                     [0, 61, 255], [255, 0, 0],
                                     [255, 255, 0]]

# Hue band (degrees) per shape class when colours hint the class.
_CLASS_HUES = ((-15.0, 15.0), (100.0, 145.0), (205.0, 250.0), (38.0, 62.0))
_MIN_VISIBLE_FRACTION = 0.5   # of an occluded object's own area
_MIN_OBJECT_PIXELS = 200
_PLACEMENT_TRIES = 30


# ----------------------------------------------------------------------------
# argument checks
# ----------------------------------------------------------------------------
def _check_pair(name: str, value, low: int, ordered: bool) -> Tuple[int, int]:
    try:
        a, b = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f'{name} must be a pair of integers, got {value!r}')
    if a < low or b < low or (ordered and a > b):
        order = ' with min <= max' if ordered else ''
        raise ValueError(f'{name} must be two integers >= {low}{order}, '
                         f'got {value!r}')
    return a, b


def _check_args(num_train, num_val, image_size, objects_per_image,
                object_size) -> Tuple[Tuple[int, int], Tuple[int, int],
                                      Tuple[int, int]]:
    for name, n in (('num_train', num_train), ('num_val', num_val)):
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f'{name} must be a positive integer, got {n!r}')
    width, height = _check_pair('image_size (width, height)', image_size,
                                64, False)
    objs = _check_pair('objects_per_image (min, max)', objects_per_image, 1,
                       True)
    sizes = _check_pair('object_size (min, max) in pixels', object_size, 16,
                        True)
    if sizes[1] > min(width, height):
        raise ValueError(
            f'object_size max {sizes[1]} exceeds the short side of '
            f'image_size {image_size}; lower object_size or enlarge the image')
    return (width, height), objs, sizes


# ----------------------------------------------------------------------------
# rendering
# ----------------------------------------------------------------------------
def _hsv(h_deg: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb((h_deg / 360.0) % 1.0, s, v),
                    np.float32) * 255.0


def _texture(kind: str, rng: np.random.Generator, xs: np.ndarray,
             ys: np.ndarray, coarse_noise: np.ndarray):
    """A texture at pixels ``xs, ys`` (N,): ``(c1, c2, t)``, the pixel colours
    being ``c1 + t * (c2 - c1)`` with RGB ``c1, c2`` and ``t`` (N,) in [0, 1].

    ``coarse_noise`` (N,) is a smooth random field used by the noise texture.
    """
    hue = rng.uniform(0, 360)
    sat = rng.uniform(0.0, 0.3)
    v1 = rng.uniform(0.15, 0.55)
    # Patterned textures need contrast to be seen, the gradient less so.
    v2 = min(0.95, v1 + rng.uniform(0.25 if kind != 'gradient' else 0.15, 0.45))
    c1 = _hsv(hue, sat, v1)
    c2 = _hsv(hue + rng.uniform(-40, 40), sat, v2)
    if rng.random() < 0.5:
        c1, c2 = c2, c1
    theta = rng.uniform(0, math.pi)
    u = xs * math.cos(theta) + ys * math.sin(theta)
    if kind == 'gradient':
        t = (u - u.min()) / max(float(u.max() - u.min()), 1e-6)
    elif kind == 'checkerboard':
        cell = rng.uniform(9, 20)
        v = ys * math.cos(theta) - xs * math.sin(theta)
        t = np.mod(np.floor(u / cell) + np.floor(v / cell), 2)
    elif kind == 'noise':
        t = 0.5 * coarse_noise + 0.5 * rng.random(xs.shape, np.float32)
    elif kind == 'stripes':
        period = rng.uniform(8, 18)
        duty = rng.uniform(0.35, 0.65)
        t = np.mod(u / period + rng.random(), 1.0) < duty
    else:  # pragma: no cover - internal
        raise ValueError(kind)
    return c1, c2, t.astype(np.float32)


def _shape_polygon(cls: int, cx: float, cy: float, radius: float,
                   angle: float, rng: np.random.Generator) -> np.ndarray:
    """Vertices (N, 2) of shape class ``cls`` with circumradius ``radius``."""
    name = DEMO_DET_CLASSES[cls]
    if name == 'circle':
        phi = np.linspace(0, 2 * math.pi, 64, endpoint=False)
        r = np.full_like(phi, radius)
    elif name == 'square':
        phi = angle + math.pi / 4 + np.arange(4) * math.pi / 2
        r = np.full_like(phi, radius)
    elif name == 'triangle':
        phi = angle + np.arange(3) * 2 * math.pi / 3
        r = np.full_like(phi, radius)
    else:  # star: 5 outer and 5 inner vertices
        phi = angle + np.arange(10) * math.pi / 5
        inner = radius * rng.uniform(0.45, 0.55)
        r = np.where(np.arange(10) % 2 == 0, radius, inner)
    return np.stack([cx + r * np.cos(phi), cy + r * np.sin(phi)], axis=1)


def _rasterize(poly: np.ndarray, height: int,
               width: int) -> Tuple[Tuple[slice, slice], np.ndarray]:
    """The polygon's mask inside its bounding box: ``(window, mask)`` with
    ``window`` the (rows, cols) slices of the image it covers."""
    import cv2
    x0 = max(int(math.floor(poly[:, 0].min())), 0)
    y0 = max(int(math.floor(poly[:, 1].min())), 0)
    x1 = min(int(math.ceil(poly[:, 0].max())) + 1, width)
    y1 = min(int(math.ceil(poly[:, 1].max())) + 1, height)
    mask = np.zeros((max(y1 - y0, 1), max(x1 - x0, 1)), np.uint8)
    # 4 fractional bits: sub-pixel vertex positions; no anti-aliasing, so the
    # label of every pixel is exact. Pixel centres are at integer + 0.5.
    pts = np.round((poly - (x0 + 0.5, y0 + 0.5)) * 16).astype(np.int32)
    cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_8, shift=4)
    return (slice(y0, y1), slice(x0, x1)), mask.astype(bool)


def _polygon_area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _still_recognisable(visible: np.ndarray, own_area: int) -> bool:
    """Whether an occluded object's visible mask is annotatable as polygons:
    enough of it left, no holes, no slivers."""
    import cv2
    count = int(visible.sum())
    if count < max(_MIN_OBJECT_PIXELS, _MIN_VISIBLE_FRACTION * own_area):
        return False
    vis = visible.astype(np.uint8)
    _, hierarchy = cv2.findContours(vis, cv2.RETR_CCOMP,
                                    cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is not None and (hierarchy[0][:, 3] >= 0).any():
        return False  # a hole: COCO polygons cannot describe it
    _, _, stats, _ = cv2.connectedComponentsWithStats(vis, connectivity=8)
    return bool((stats[1:, cv2.CC_STAT_AREA] >= max(60, 0.1 * own_area)).all())


@functools.lru_cache(maxsize=4)
def _pixel_grid(height: int, width: int) -> Tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ys.flags.writeable = False
    xs.flags.writeable = False
    return ys, xs


def _render_background(rng: np.random.Generator, width: int,
                       height: int) -> Tuple[np.ndarray, np.ndarray]:
    """The textured background of a scene: 1-3 Voronoi regions, each with its
    own texture from :data:`DEMO_TEXTURES`.

    Returns:
        image (H, W, 3) float32 RGB in [0, 255] (no noise yet); semantic
        (H, W) uint8 with 0 = seam between regions and ``k + 1`` = texture k.
    """
    import cv2
    ys, xs = _pixel_grid(height, width)

    # Background: Voronoi regions of 1-3 seeds, each with its own texture.
    num_regions = int(rng.integers(1, 4))
    seeds = rng.uniform((0, 0), (width, height), size=(num_regions, 2))
    kinds = rng.choice(len(DEMO_TEXTURES), size=num_regions, replace=False)
    step = int(rng.integers(6, 14))
    coarse = rng.random((height // step + 2, width // step + 2), np.float32)
    coarse = cv2.resize(coarse, (width, height),
                        interpolation=cv2.INTER_LINEAR)
    semantic = np.empty((height, width), np.uint8)
    if num_regions == 1:
        region = np.zeros((height, width), np.uint8)
    else:
        # Nearest seed; comparisons are much cheaper than argmin over a stack.
        dist = [(xs - float(sx)) ** 2 + (ys - float(sy)) ** 2
                for sx, sy in seeds]
        region = (dist[1] < dist[0]).astype(np.uint8)
        if num_regions == 3:
            region[dist[2] < np.minimum(dist[0], dist[1])] = 2
    image = np.empty((height, width, 3), np.float32)
    t_map = np.zeros((height, width), np.float32)
    for r, kind in enumerate(kinds):
        inside = region == r
        c1, c2, t_map[inside] = _texture(DEMO_TEXTURES[kind], rng, xs[inside],
                                         ys[inside], coarse[inside])
        colours = c1 + t_map[..., None] * (c2 - c1)
        if num_regions == 1:
            image = colours
        else:  # 3-channel boolean indexing is slow; a masked copy is not
            np.copyto(image, colours, where=inside[..., None])
        semantic[inside] = kind + 1
    if num_regions > 1:
        edge = np.zeros((height, width), np.uint8)
        edge[:, 1:] |= (region[:, 1:] != region[:, :-1])
        edge[1:, :] |= (region[1:, :] != region[:-1, :])
        edge = cv2.dilate(edge, np.ones((2, 2), np.uint8)).astype(bool)
        semantic[edge] = 0  # seams between regions: ADE20K "other"
    return image, semantic


def _render_scene(rng: np.random.Generator, width: int, height: int,
                  objects_per_image: Tuple[int, int],
                  object_size: Tuple[int, int], color_by_class: bool):
    """Render one scene.

    Returns:
        image (H, W, 3) uint8 RGB; semantic (H, W) uint8 with 0 = seam and
        1..8 = index into DEMO_SEG_CLASSES plus one; instances (H, W) int32
        with 0 = background and k = k-th placed object; classes, the shape
        class index of each placed object; own_areas, the pixel area of each
        object before later ones occluded it.
    """
    ys, xs = _pixel_grid(height, width)
    image, semantic = _render_background(rng, width, height)

    # Objects, painted in order; each new one is on top.
    instances = np.zeros((height, width), np.int32)
    own_areas: List[int] = []
    classes: List[int] = []
    num_objects = int(rng.integers(objects_per_image[0],
                                   objects_per_image[1] + 1))
    log_lo, log_hi = math.log(object_size[0]), math.log(object_size[1])
    for _ in range(num_objects):
        for _ in range(_PLACEMENT_TRIES):
            cls = int(rng.integers(len(DEMO_DET_CLASSES)))
            radius = math.exp(rng.uniform(log_lo, log_hi)) / 2
            margin = 0.6 * radius
            cx = rng.uniform(margin, width - margin)
            cy = rng.uniform(margin, height - margin)
            poly = _shape_polygon(cls, cx, cy, radius,
                                  rng.uniform(0, 2 * math.pi), rng)
            window, mask = _rasterize(poly, height, width)
            area = int(mask.sum())
            if area < _MIN_OBJECT_PIXELS or area < 0.75 * _polygon_area(poly):
                continue  # too small, or too much of it outside the image
            covered = np.unique(instances[window][mask])
            full = np.zeros((height, width), bool)
            full[window] = mask
            if all(_still_recognisable((instances == k) & ~full,
                                       own_areas[k - 1])
                   for k in covered[covered > 0]):
                break
        else:
            continue  # no valid placement found: fewer objects in this image
        instances[window][mask] = len(classes) + 1
        own_areas.append(area)
        classes.append(cls)
        semantic[window][mask] = len(DEMO_TEXTURES) + cls + 1
        # Flat colour with a gentle linear shading across the object.
        if color_by_class:
            hue = rng.uniform(*_CLASS_HUES[cls])
        else:
            hue = rng.uniform(0, 360)
        colour = _hsv(hue, rng.uniform(0.65, 1.0), rng.uniform(0.6, 1.0))
        theta = rng.uniform(0, 2 * math.pi)
        u = ((xs[window][mask] - cx) * math.cos(theta) +
             (ys[window][mask] - cy) * math.sin(theta)) / radius
        shade = 1.0 + rng.uniform(0.0, 0.25) * u
        image[window][mask] = colour[None] * shade[:, None]

    # Sensor-like noise (uniform: a normal draw costs 3x more here).
    image += rng.random(image.shape, np.float32) * 10.0 - 5.0
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return image, semantic, instances, classes, own_areas


def _mask_to_polygons(mask: np.ndarray) -> List[List[float]]:
    """COCO polygons (continuous coordinates, pixel ``j`` spans [j, j+1])
    around a binary mask.

    The contour is traced on a 2x upsampled crop of the mask, so its vertices
    lie a quarter pixel inside the true pixel boundary instead of half a
    pixel, and simplified to within a quarter pixel.
    """
    import cv2
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    y0, x0 = int(rows[0]), int(cols[0])
    crop = mask[y0:rows[-1] + 1, x0:cols[-1] + 1].astype(np.uint8)
    up = cv2.resize(crop, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(up, cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_NONE)
    polygons = []
    for contour in contours:
        contour = cv2.approxPolyDP(contour, 0.5, True)
        pts = contour.reshape(-1, 2).astype(np.float64)
        if len(pts) < 3:
            continue
        pts = (pts + 0.5) / 2.0 + (x0, y0)
        polygons.append([round(float(v), 2) for v in pts.reshape(-1)])
    return polygons


def _write_jpeg(path: str, rgb: np.ndarray) -> None:
    import cv2
    if not cv2.imwrite(path, rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92]):
        raise OSError(f'could not write {path}')


def _write_png(path: str, label: np.ndarray) -> None:
    import cv2
    if not cv2.imwrite(path, label):
        raise OSError(f'could not write {path}')


# ----------------------------------------------------------------------------
# stamps and output directories
# ----------------------------------------------------------------------------
def _prepare_root(root: str, params: dict, own_paths: Sequence[str],
                  overwrite: bool) -> Optional[dict]:
    """Return the stored summary if ``root`` already holds this exact output;
    otherwise clear the generator's own paths and return None."""
    stamp_path = osp.join(root, STAMP_NAME)
    stamp = None
    if osp.isfile(stamp_path):
        try:
            with open(stamp_path) as f:
                stamp = json.load(f)
        except (OSError, ValueError):
            stamp = None
    if (stamp is not None and not overwrite
            and stamp.get('params') == params and stamp.get('summary')
            and all(osp.exists(osp.join(root, p)) for p in own_paths)):
        return stamp['summary']
    if osp.isdir(root):
        entries = set(os.listdir(root))
        foreign = sorted(entries - set(own_paths) - {STAMP_NAME}
                         - {p.split('/')[0] for p in own_paths})
        if stamp is None and entries and not overwrite:
            raise FileExistsError(
                f'{root} is not empty and was not written by the demo data '
                f'generator (no {STAMP_NAME}); choose another directory or '
                f'pass overwrite=True (--overwrite) to replace '
                f'{", ".join(own_paths)} in it'
                + (f' (other entries {foreign} are kept)' if foreign else ''))
    for p in own_paths:
        path = osp.join(root, p)
        if osp.isdir(path):
            shutil.rmtree(path)
        elif osp.exists(path):
            os.remove(path)
    # A stamp without summary marks the output as ours but unfinished, so an
    # interrupted run is redone next time instead of being refused.
    os.makedirs(root, exist_ok=True)
    _write_stamp(root, params, None)
    return None


def _write_stamp(root: str, params: dict, summary: Optional[dict]) -> None:
    with open(osp.join(root, STAMP_NAME), 'w') as f:
        json.dump(dict(generator=__name__, params=params, summary=summary), f,
                  indent=2, sort_keys=True)


def _size_stats(values: Sequence[float]) -> dict:
    if not values:
        return {}
    arr = np.asarray(values, np.float64)
    pct = np.percentile(arr, [0, 10, 50, 90, 100])
    return {k: round(float(v), 1)
            for k, v in zip(('min', 'p10', 'median', 'p90', 'max'), pct)}


def _image_rng(seed: int, split: int, index: int) -> np.random.Generator:
    # Image `index` of a split depends on nothing else, so changing the number
    # of images keeps the first ones identical.
    return np.random.default_rng([int(seed), split, index])


# ----------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------
def generate_coco_instance(root: str = 'data/demo_coco',
                           num_train: int = 200,
                           num_val: int = 50,
                           image_size: Tuple[int, int] = (320, 256),
                           seed: int = 0,
                           objects_per_image: Tuple[int, int] = (1, 5),
                           object_size: Tuple[int, int] = (32, 120),
                           color_by_class: bool = True,
                           overwrite: bool = False) -> dict:
    """Write the demo instance-segmentation dataset in COCO format.

    Args:
        root (str): Output directory (the mmdet ``data_root``).
        num_train (int): Images in ``train2017``.
        num_val (int): Images in ``val2017``.
        image_size (tuple[int, int]): ``(width, height)`` of every image.
        seed (int): Seed; the same arguments give byte-identical files.
        objects_per_image (tuple[int, int]): Inclusive range of the number of
            shapes drawn per image (a shape that finds no valid place after
            30 tries is left out, so a few images have fewer).
        object_size (tuple[int, int]): Range of the shapes' circumscribed
            diameter in pixels, sampled log-uniformly.
        color_by_class (bool): Draw each class's hue from its own band (an
            easy cue for short CPU runs); False draws any hue.
        overwrite (bool): Regenerate even if ``root`` holds this output, and
            replace the generator's paths in a directory it did not write.

    Returns:
        dict: Summary: ``root``, ``classes``, ``generated`` (False when an
        identical output was found), ``seconds``, and per split the number of
        images and instances, objects per image, instances per class and the
        distribution of object size (square root of the visible area).
    """
    (width, height), objs, sizes = _check_args(num_train, num_val, image_size,
                                               objects_per_image, object_size)
    params = dict(kind='coco_instance', version=GENERATOR_VERSION,
                  num_train=int(num_train), num_val=int(num_val),
                  image_size=[width, height], seed=int(seed),
                  objects_per_image=list(objs), object_size=list(sizes),
                  color_by_class=bool(color_by_class))
    own = ['annotations/instances_train2017.json',
           'annotations/instances_val2017.json', 'train2017', 'val2017']
    start = time.perf_counter()
    found = _prepare_root(root, params, own, overwrite)
    if found is not None:
        return dict(found, root=root, generated=False,
                    seconds=round(time.perf_counter() - start, 2))
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    categories = [dict(id=i + 1, name=n, supercategory='shape')
                  for i, n in enumerate(DEMO_DET_CLASSES)]
    summary = dict(kind='coco_instance', classes=list(DEMO_DET_CLASSES),
                   image_size=[width, height], seed=int(seed), splits={})
    for split_id, (split, count) in enumerate((('train2017', num_train),
                                               ('val2017', num_val))):
        os.makedirs(osp.join(root, split), exist_ok=True)
        images, annotations = [], []
        per_image, per_class, obj_sizes = [], [0] * len(DEMO_DET_CLASSES), []
        occluded = 0
        for index in range(count):
            image_id = index + 1
            rng = _image_rng(seed, split_id, index)
            image, _, instances, classes, own_areas = _render_scene(
                rng, width, height, objs, sizes, color_by_class)
            file_name = f'{image_id:012d}.jpg'
            _write_jpeg(osp.join(root, split, file_name), image)
            images.append(dict(id=image_id, file_name=file_name,
                               width=width, height=height))
            kept = 0
            for k, cls in enumerate(classes, start=1):
                mask = instances == k
                polygons = _mask_to_polygons(mask)
                if not polygons:
                    continue
                rows = np.flatnonzero(mask.any(axis=1))
                cols = np.flatnonzero(mask.any(axis=0))
                x0, y0 = int(cols[0]), int(rows[0])
                bw, bh = int(cols[-1]) - x0 + 1, int(rows[-1]) - y0 + 1
                area = int(mask.sum())
                annotations.append(dict(
                    id=len(annotations) + 1, image_id=image_id,
                    category_id=cls + 1, segmentation=polygons,
                    area=float(area), bbox=[float(x0), float(y0), float(bw),
                                            float(bh)], iscrowd=0))
                kept += 1
                per_class[cls] += 1
                obj_sizes.append(math.sqrt(area))
                occluded += area < own_areas[k - 1]
            per_image.append(kept)
        coco = dict(
            info=dict(description='mlla-mm demo shapes (instance)',
                      version=str(GENERATOR_VERSION), year=2024,
                      contributor='mlla_mm.datasets.demo_data'),
            licenses=[], images=images, annotations=annotations,
            categories=categories)
        ann_path = osp.join(root, 'annotations', f'instances_{split}.json')
        with open(ann_path, 'w') as f:
            json.dump(coco, f, separators=(',', ':'))
        summary['splits'][split] = dict(
            images=count, instances=len(annotations),
            objects_per_image=dict(
                mean=round(float(np.mean(per_image)), 2),
                histogram={str(n): per_image.count(n)
                           for n in sorted(set(per_image))}),
            instances_per_class=dict(zip(DEMO_DET_CLASSES, per_class)),
            occluded_instances=occluded,
            sqrt_area_px=_size_stats(obj_sizes))
    _write_stamp(root, params, summary)
    return dict(summary, root=root, generated=True,
                seconds=round(time.perf_counter() - start, 2))


def generate_ade20k_semantic(root: str = 'data/demo_ade20k',
                             num_train: int = 200,
                             num_val: int = 50,
                             image_size: Tuple[int, int] = (320, 256),
                             seed: int = 0,
                             objects_per_image: Tuple[int, int] = (1, 5),
                             object_size: Tuple[int, int] = (32, 120),
                             color_by_class: bool = True,
                             overwrite: bool = False) -> dict:
    """Write the demo semantic-segmentation dataset in the ADE20K layout.

    Args:
        root (str): Output directory (the mmseg ``data_root``).
        num_train (int): Images in ``images/training``.
        num_val (int): Images in ``images/validation``.
        image_size (tuple[int, int]): ``(width, height)`` of every image.
        seed (int): Seed; the same arguments give byte-identical files.
        objects_per_image (tuple[int, int]): Inclusive range of the number of
            shapes drawn per image.
        object_size (tuple[int, int]): Range of the shapes' circumscribed
            diameter in pixels, sampled log-uniformly.
        color_by_class (bool): Draw each shape class's hue from its own band;
            False draws any hue.
        overwrite (bool): Regenerate even if ``root`` holds this output, and
            replace the generator's paths in a directory it did not write.

    Returns:
        dict: Summary: ``root``, ``classes``, ``ade20k_indices``,
        ``generated``, ``seconds``, and per split the number of images and the
        fraction of pixels of each class (``other`` = label 0, ignored).
    """
    (width, height), objs, sizes = _check_args(num_train, num_val, image_size,
                                               objects_per_image, object_size)
    params = dict(kind='ade20k_semantic', version=GENERATOR_VERSION,
                  num_train=int(num_train), num_val=int(num_val),
                  image_size=[width, height], seed=int(seed),
                  objects_per_image=list(objs), object_size=list(sizes),
                  color_by_class=bool(color_by_class))
    own = ['images', 'annotations']
    start = time.perf_counter()
    found = _prepare_root(root, params, own, overwrite)
    if found is not None:
        return dict(found, root=root, generated=False,
                    seconds=round(time.perf_counter() - start, 2))
    # demo label (0 = seam, 1..8) -> ADE20K PNG value (0 = other, index + 1)
    to_ade = np.zeros(256, np.uint8)
    to_ade[1:len(DEMO_SEG_CLASSES) + 1] = np.array(DEMO_SEG_ADE20K_INDICES) + 1
    summary = dict(kind='ade20k_semantic', classes=list(DEMO_SEG_CLASSES),
                   class_meaning=dict(DEMO_SEG_CLASS_MEANING),
                   ade20k_indices=list(DEMO_SEG_ADE20K_INDICES),
                   image_size=[width, height], seed=int(seed), splits={})
    # Separate seed streams from the instance dataset's (split ids 0, 1).
    for split_id, (split, prefix, count) in enumerate(
            (('training', 'ADE_train', num_train),
             ('validation', 'ADE_val', num_val)), start=2):
        for sub in ('images', 'annotations'):
            os.makedirs(osp.join(root, sub, split), exist_ok=True)
        pixels = np.zeros(len(DEMO_SEG_CLASSES) + 1, np.int64)
        for index in range(count):
            rng = _image_rng(seed, split_id, index)
            image, semantic, _, _, _ = _render_scene(
                rng, width, height, objs, sizes, color_by_class)
            name = f'{prefix}_{index + 1:08d}'
            _write_jpeg(osp.join(root, 'images', split, name + '.jpg'), image)
            _write_png(osp.join(root, 'annotations', split, name + '.png'),
                       to_ade[semantic])
            pixels += np.bincount(semantic.reshape(-1),
                                  minlength=len(pixels))
        frac = pixels / max(int(pixels.sum()), 1)
        summary['splits'][split] = dict(
            images=count,
            pixel_fraction={n: round(float(f), 4) for n, f in
                            zip(('other',) + DEMO_SEG_CLASSES, frac)})
    _write_stamp(root, params, summary)
    return dict(summary, root=root, generated=True,
                seconds=round(time.perf_counter() - start, 2))

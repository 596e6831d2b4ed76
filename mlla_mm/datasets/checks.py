"""Checks of the data a config trains and validates on (``tools/check_dataset.py``).

mmdet and mmseg read bad data in one of three ways: they crash hours in (a missing or
undecodable image, a label beyond the classes reaching the loss), they drop it silently
(boxes of zero size or outside the image, polygons of fewer than 3 points, annotations
of categories the config does not train), or they train on it unchanged (a truncated
JPEG is decoded by OpenCV as far as it goes, the rest grey). These checks find all of it
before training, each problem naming its file.

* COCO-format instance data is checked from the annotation file itself (not from
  mmdet's parsed form, which has already dropped the suspicious annotations): image
  entries, every box (non-degenerate, inside the image), every polygon (at least 3
  points, even coordinate count), RLE sizes, category ids (known to the file and to the
  config's classes), images without annotations.
* Semantic-segmentation data (mmseg datasets) is checked pair by pair: the label map
  exists, decodes, has one channel and the image's size, and holds only values of the
  config's classes or the ignore index (``reduce_zero_label`` applied as mmseg does).
* Every image: exists, decodes completely (PIL, which -- unlike OpenCV -- rejects a
  truncated file), its channel count and its size (against the annotation's).

Only the standard library, numpy and PIL are used here; building an mmseg dataset (for
its file list) needs mmseg.
"""
import json
import os.path as osp
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

ERROR, WARNING = 'error', 'warning'
# A box edge may stick out of the image by this much (pixels) before it is reported:
# COCO's own annotations are often off by a fraction of a pixel.
BOX_TOLERANCE = 1.0


@dataclass
class Problem:
    level: str     # ERROR or WARNING
    kind: str      # short key, e.g. 'missing file', 'degenerate box'
    file: str      # the image / label map / annotation file concerned
    detail: str    # what exactly, with numbers

    def __str__(self) -> str:
        return f'{self.level.upper():7s} {self.kind}: {self.file}: {self.detail}'


@dataclass
class SplitReport:
    split: str                  # 'train' / 'val' / 'test'
    dataset: str                # what was checked (type and annotation file or folder)
    images: int = 0
    annotations: int = 0
    problems: List[Problem] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(p.level == ERROR for p in self.problems)

    @property
    def warnings(self) -> int:
        return sum(p.level == WARNING for p in self.problems)

    def to_dict(self) -> dict:
        out = asdict(self)
        out.update(errors=self.errors, warnings=self.warnings)
        return out


# ----------------------------------------------------------------------------- images

def inspect_image(path: str, expected_size: Optional[Tuple[int, int]] = None,
                  label_map: bool = False) -> Tuple[List[Problem], Optional[np.ndarray]]:
    """Decode ``path`` completely; report what is wrong with it.

    ``expected_size`` is (width, height). For a label map the decoded values are returned.
    """
    from PIL import Image
    problems = []
    if not osp.isfile(path):
        return [Problem(ERROR, 'missing file', path, 'no such file')], None
    try:
        with Image.open(path) as img:
            img.load()  # decodes everything: raises on truncated/corrupt data
            mode, size = img.mode, img.size
            values = np.asarray(img) if label_map else None
    except Exception as error:  # PIL raises OSError, SyntaxError, ValueError ...
        return [Problem(ERROR, 'undecodable', path, f'{type(error).__name__}: {error}')], None
    if label_map:
        if mode not in ('L', 'P', 'I', 'I;16'):
            problems.append(Problem(ERROR, 'label map channels', path,
                                    f'mode {mode}: a label map must be single-channel '
                                    '(8-bit grey or palette PNG)'))
    elif mode == 'L' or mode.startswith('I'):
        problems.append(Problem(WARNING, 'grayscale image', path,
                                f'1 channel (mode {mode}); LoadImageFromFile '
                                "(color_type='color') replicates it to 3 channels"))
    elif mode in ('RGBA', 'LA', 'P', 'CMYK'):
        problems.append(Problem(WARNING, 'unusual channels', path,
                                f'mode {mode}; LoadImageFromFile converts it to 3 channels'))
    if expected_size is not None and tuple(size) != tuple(expected_size):
        problems.append(Problem(ERROR, 'size mismatch', path,
                                f'image is {size[0]}x{size[1]}, its annotation says '
                                f'{expected_size[0]}x{expected_size[1]} (boxes/masks '
                                'would not line up)'))
    return problems, values


def _inspect_image_job(args):
    return inspect_image(*args)[0]


def inspect_images(jobs: Sequence[Tuple[str, Optional[Tuple[int, int]]]],
                   workers: int = 1) -> List[Problem]:
    """:func:`inspect_image` over many (path, expected_size), in ``workers`` processes."""
    jobs = [(path, size, False) for path, size in jobs]
    if workers <= 1 or len(jobs) < 64:
        results = map(_inspect_image_job, jobs)
    else:
        pool = ProcessPoolExecutor(workers)
        results = pool.map(_inspect_image_job, jobs, chunksize=32)
    problems = [p for result in results for p in result]
    if workers > 1 and len(jobs) >= 64:
        pool.shutdown()
    return problems


# ----------------------------------------------------------------------------- COCO

def check_coco(ann_file: str, img_prefix: str, classes: Optional[Sequence[str]] = None,
               split: str = 'train', filter_empty_gt: bool = False,
               workers: int = 1) -> SplitReport:
    """Check a COCO-format instance annotation file and the images it names."""
    report = SplitReport(split, f'COCO {ann_file}')
    if not osp.isfile(ann_file):
        report.problems.append(Problem(ERROR, 'missing file', ann_file,
                                       'annotation file not found'))
        return report
    try:
        with open(ann_file) as f:
            coco = json.load(f)
    except (OSError, ValueError) as error:
        report.problems.append(Problem(ERROR, 'undecodable', ann_file, f'not JSON: {error}'))
        return report
    add = report.problems.append
    images = {img['id']: img for img in coco.get('images', [])}
    categories = {c['id']: c['name'] for c in coco.get('categories', [])}
    report.images = len(images)
    if classes is not None:
        unknown = [name for name in classes if name not in categories.values()]
        if unknown:
            add(Problem(ERROR, 'unknown class', ann_file,
                        f'config classes {unknown} are not among the file\'s categories '
                        f'{sorted(categories.values())}'))
    counts: Counter = Counter()
    ignored_categories: Counter = Counter()
    for ann in coco.get('annotations', []):
        report.annotations += 1
        img = images.get(ann.get('image_id'))
        if img is None:
            add(Problem(ERROR, 'unknown image', ann_file,
                        f'annotation {ann.get("id")} refers to image_id '
                        f'{ann.get("image_id")}, which is not in "images"'))
            continue
        where = osp.join(img_prefix, img.get('file_name', '?'))
        label = f'annotation {ann.get("id")}'
        found = [*_check_box(ann, img, label),
                 *_check_segmentation(ann.get('segmentation'), img, label)]
        cat = ann.get('category_id')
        if cat not in categories:
            found.append((ERROR, 'unknown category', f'{label}: category_id {cat} is not in '
                          f'"categories" {sorted(categories)}'))
        elif classes is not None and categories[cat] not in classes:
            ignored_categories[categories[cat]] += 1
        elif not ann.get('iscrowd') and not any(level == ERROR for level, _, _ in found):
            counts[img['id']] += 1  # an instance training will use
        report.problems += [Problem(level, kind, where, detail) for level, kind, detail in found]
    for name, n in sorted(ignored_categories.items()):
        add(Problem(WARNING, 'category not in config', ann_file,
                    f'{n} annotations of category {name!r} are ignored in training: it is '
                    f'not among the config\'s classes'))
    for img_id, img in images.items():
        if counts[img_id] == 0:
            what = ('skipped in training (filter_empty_gt=True)' if filter_empty_gt
                    else 'trained on as background only')
            add(Problem(WARNING, 'no annotations', osp.join(img_prefix, img.get('file_name', '?')),
                        f'image {img_id} has no usable annotation: {what}'))
    report.problems += inspect_images(
        [(osp.join(img_prefix, img['file_name']), (img.get('width'), img.get('height'))
          if img.get('width') and img.get('height') else None)
         for img in images.values() if 'file_name' in img], workers)
    return report


def _check_box(ann: dict, img: dict, label: str) -> Iterable[Tuple[str, str, str]]:
    box = ann.get('bbox')
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        yield ERROR, 'bad box', f'{label}: bbox {box!r} is not [x, y, w, h]'
        return
    x, y, w, h = (float(v) for v in box)
    if not (w >= 1 and h >= 1):
        yield ERROR, 'degenerate box', (f'{label}: bbox {box} has width/height below 1 px '
                                        '(mmdet drops it silently)')
        return
    width, height = img.get('width'), img.get('height')
    if width and height and (x < -BOX_TOLERANCE or y < -BOX_TOLERANCE or
                             x + w > width + BOX_TOLERANCE or y + h > height + BOX_TOLERANCE):
        yield ERROR, 'box outside image', (f'{label}: bbox {box} leaves the {width}x{height} '
                                           'image')
    if ann.get('area', 1) <= 0:
        yield ERROR, 'degenerate box', f'{label}: area {ann.get("area")} (mmdet drops it)'


def _check_segmentation(seg, img: dict, label: str) -> Iterable[Tuple[str, str, str]]:
    if seg is None or seg == []:
        return
    if isinstance(seg, dict):  # RLE
        size = seg.get('size')
        if size is not None and img.get('height') and list(size) != [img['height'],
                                                                     img['width']]:
            yield ERROR, 'bad mask', (f'{label}: RLE size {size} is not the image\'s '
                                      f'[{img["height"]}, {img["width"]}]')
        return
    if not isinstance(seg, list):
        yield ERROR, 'bad mask', f'{label}: segmentation is neither polygons nor RLE'
        return
    for k, poly in enumerate(seg):
        if not isinstance(poly, (list, tuple)) or len(poly) % 2:
            yield ERROR, 'bad polygon', (f'{label}: polygon {k} has an odd number of '
                                         'coordinates')
        elif len(poly) < 6:
            yield ERROR, 'degenerate polygon', (
                f'{label}: polygon {k} has {len(poly) // 2} point(s), at least 3 are needed '
                '(mmdet ignores an instance without a valid polygon)')


# ----------------------------------------------------------------------------- segmentation

def check_segmentation_pairs(pairs: Sequence[Tuple[str, str]], num_classes: int,
                             reduce_zero_label: bool, ignore_index: int = 255,
                             label_map: Optional[Dict[int, int]] = None,
                             split: str = 'train', dataset: str = '',
                             workers: int = 1) -> SplitReport:
    """Check (image, label map) pairs of a semantic-segmentation dataset.

    ``reduce_zero_label`` and ``label_map`` (the dataset's, for a class subset) are applied
    as mmseg's ``LoadAnnotations`` does before values are compared with the classes.
    """
    report = SplitReport(split, dataset, images=len(pairs), annotations=len(pairs))
    jobs = [(img, seg, num_classes, reduce_zero_label, ignore_index, label_map)
            for img, seg in pairs]
    if workers > 1 and len(jobs) >= 64:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(_check_pair_job, jobs, chunksize=16))
    else:
        results = [_check_pair_job(job) for job in jobs]
    for result in results:
        report.problems += result
    return report


def train_ids(values: np.ndarray, reduce_zero_label: bool, ignore_index: int = 255,
              label_map: Optional[Dict[int, int]] = None) -> np.ndarray:
    """What mmseg's ``LoadAnnotations`` turns raw label-map values into."""
    out = values.astype(np.int64)
    if reduce_zero_label:  # 0 -> ignore, v -> v - 1
        out = np.where(out == 0, ignore_index, out - 1)
        out = np.where(out == ignore_index - 1, ignore_index, out)
    if label_map:
        out = np.array([label_map.get(int(v), int(v)) for v in out], dtype=np.int64)
    return out


def _check_pair_job(job) -> List[Problem]:
    img_path, seg_path, num_classes, reduce_zero_label, ignore_index, label_map = job
    problems, _ = inspect_image(img_path)
    seg_problems, labels = inspect_image(seg_path, label_map=True)
    problems += seg_problems
    if labels is None or labels.ndim != 2:
        return problems
    img_size = None
    if osp.isfile(img_path):
        try:
            from PIL import Image
            with Image.open(img_path) as img:
                img_size = img.size
        except Exception:
            pass
    if img_size is not None and (labels.shape[1], labels.shape[0]) != tuple(img_size):
        problems.append(Problem(ERROR, 'size mismatch', seg_path,
                                f'label map is {labels.shape[1]}x{labels.shape[0]}, the image '
                                f'{img_size[0]}x{img_size[1]}'))
    values = np.unique(labels)
    ids = train_ids(values, reduce_zero_label, ignore_index, label_map)
    bad = values[(ids < 0) | ((ids >= num_classes) & (ids != ignore_index))]
    if bad.size:
        problems.append(Problem(
            ERROR, 'label out of range', seg_path,
            f'raw values {bad.tolist()[:10]} become labels outside the {num_classes} classes '
            f'and ignore_index {ignore_index} (reduce_zero_label={reduce_zero_label}'
            + (', with the class-subset label_map' if label_map else '') + '); the loss '
            'would fail on them'))
    if (ids == ignore_index).all():
        problems.append(Problem(WARNING, 'no annotations', seg_path,
                                'no labelled pixel (all ignored): contributes no loss'))
    return problems


# ----------------------------------------------------------------------------- reports

def summary_table(reports: Sequence[SplitReport]) -> str:
    """Markdown table: one row per split, then one per kind of problem."""
    lines = ['| split | dataset | images | annotations | errors | warnings |',
             '|---|---|---:|---:|---:|---:|']
    for r in reports:
        lines.append(f'| {r.split} | {r.dataset} | {r.images} | {r.annotations} | '
                     f'{r.errors} | {r.warnings} |')
    kinds: Dict[Tuple[str, str, str], int] = Counter(
        (r.split, p.level, p.kind) for r in reports for p in r.problems)
    if kinds:
        lines += ['', '| split | level | problem | count |', '|---|---|---|---:|']
        for (split, level, kind), n in sorted(kinds.items()):
            lines.append(f'| {split} | {level} | {kind} | {n} |')
    return '\n'.join(lines)

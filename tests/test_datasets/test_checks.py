"""mlla_mm.datasets.checks on hand-made broken annotations (the kinds the generated-data
copies in tests/test_tools do not cover)."""
import json

import numpy as np
from PIL import Image

from mlla_mm.datasets import checks


def _kinds(report):
    return {(p.kind, p.level) for p in report.problems}


def test_coco_annotation_problems(tmp_path):
    Image.fromarray(np.zeros((128, 160, 3), np.uint8)).save(tmp_path / 'a.jpg')
    Image.fromarray(np.zeros((128, 160, 3), np.uint8)).save(tmp_path / 'b.jpg')

    def ann(i, **changes):
        good = dict(id=i, image_id=1, category_id=1, area=100.0, iscrowd=0,
                    bbox=[10, 10, 20, 20], segmentation=[[10, 10, 30, 10, 30, 30]])
        return dict(good, **changes)

    coco = dict(
        images=[dict(id=1, file_name='a.jpg', width=160, height=128),
                dict(id=2, file_name='b.jpg', width=100, height=100)],  # wrong size
        categories=[dict(id=1, name='circle')],
        annotations=[ann(1),
                     ann(2, bbox=[150, 10, 30, 20]),                      # leaves the image
                     ann(3, bbox=[10, 10, 0, 20]),                        # zero width
                     ann(4, segmentation=[[1, 2, 3, 4, 5]]),              # odd coordinates
                     ann(5, segmentation=dict(size=[64, 64], counts='x')),  # RLE of another size
                     ann(6, image_id=7),                                  # no such image
                     ann(7, image_id=2)])
    (tmp_path / 'ann.json').write_text(json.dumps(coco))
    report = checks.check_coco(str(tmp_path / 'ann.json'), str(tmp_path), classes=('circle',))
    assert _kinds(report) == {('box outside image', 'error'), ('degenerate box', 'error'),
                              ('bad polygon', 'error'), ('bad mask', 'error'),
                              ('unknown image', 'error'), ('size mismatch', 'error')}
    assert report.images == 2 and report.annotations == 7
    assert all(p.file.endswith(('a.jpg', 'b.jpg', 'ann.json')) for p in report.problems)
    report = checks.check_coco(str(tmp_path / 'ann.json'), str(tmp_path), classes=('star',))
    assert ('unknown class', 'error') in _kinds(report)
    assert ('category not in config', 'warning') in _kinds(report)
    assert checks.check_coco(str(tmp_path / 'none.json'), '').problems[0].kind == 'missing file'


def test_segmentation_pair_problems(tmp_path):
    img = tmp_path / 'x.jpg'
    Image.fromarray(np.zeros((32, 48, 3), np.uint8)).save(img)
    rgb_map, small_map = tmp_path / 'rgb.png', tmp_path / 'small.png'
    ignored = tmp_path / 'ignored.png'
    Image.fromarray(np.zeros((32, 48, 3), np.uint8)).save(rgb_map)
    Image.fromarray(np.ones((16, 48), np.uint8)).save(small_map)
    Image.fromarray(np.zeros((32, 48), np.uint8)).save(ignored)
    report = checks.check_segmentation_pairs(
        [(str(img), str(rgb_map)), (str(img), str(small_map)), (str(img), str(ignored))],
        num_classes=4, reduce_zero_label=True)
    assert _kinds(report) == {('label map channels', 'error'), ('size mismatch', 'error'),
                              ('no annotations', 'warning')}
    # reduce_zero_label: raw 0 -> ignore, 1..4 -> 0..3, 5 is out of range
    ids = checks.train_ids(np.array([0, 1, 4, 5, 255]), reduce_zero_label=True)
    assert ids.tolist() == [255, 0, 3, 4, 255]
    assert checks.train_ids(np.array([3]), False, label_map={3: 0}).tolist() == [0]

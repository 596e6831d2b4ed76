"""The generated demo datasets: deterministic, valid, and read correctly by the
real mmdet/mmseg datasets and metrics (those parts skip without mmdet/mmseg)."""
import colorsys
import filecmp
import json
import os
import os.path as osp

import numpy as np
import pytest

cv2 = pytest.importorskip('cv2')

from mlla_mm.datasets import demo_data  # noqa: E402
from mlla_mm.datasets.demo_data import (DEMO_DET_CLASSES,  # noqa: E402
                                        DEMO_DET_PALETTE,
                                        DEMO_SEG_ADE20K_INDICES,
                                        DEMO_SEG_CLASSES, DEMO_SEG_PALETTE,
                                        STAMP_NAME, generate_ade20k_semantic,
                                        generate_coco_instance)

TINY = dict(num_train=3, num_val=3, image_size=(160, 128),
            object_size=(24, 64))


@pytest.fixture(scope='module')
def coco_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('demo') / 'coco')
    generate_coco_instance(root, seed=0, **TINY)
    return root


@pytest.fixture(scope='module')
def ade_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('demo') / 'ade')
    generate_ade20k_semantic(root, seed=0, **TINY)
    return root


def _files(root):
    return sorted(osp.relpath(osp.join(d, f), root)
                  for d, _, fs in os.walk(root) for f in fs)


def _same_tree(a, b):
    files = _files(a)
    if files != _files(b):
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    return not mismatch and not errors


def _load(root, split):
    with open(osp.join(root, 'annotations', f'instances_{split}.json')) as f:
        return json.load(f)


# ---------------------------------------------------------------------------
# generator behaviour
# ---------------------------------------------------------------------------
def test_layouts(coco_root, ade_root):
    assert _files(coco_root) == sorted(
        ['annotations/instances_train2017.json',
         'annotations/instances_val2017.json', STAMP_NAME]
        + [f'train2017/{i:012d}.jpg' for i in (1, 2, 3)]
        + [f'val2017/{i:012d}.jpg' for i in (1, 2, 3)])
    expected = [STAMP_NAME]
    for split, prefix in (('training', 'ADE_train'), ('validation', 'ADE_val')):
        for i in (1, 2, 3):
            expected += [f'images/{split}/{prefix}_{i:08d}.jpg',
                         f'annotations/{split}/{prefix}_{i:08d}.png']
    assert _files(ade_root) == sorted(expected)
    img = cv2.imread(osp.join(ade_root, 'images/training/ADE_train_00000001.jpg'))
    assert img.shape == (128, 160, 3)


def test_deterministic(tmp_path, coco_root, ade_root):
    again = str(tmp_path / 'again')
    generate_coco_instance(again, seed=0, **TINY)
    assert _same_tree(coco_root, again)
    again_ade = str(tmp_path / 'again_ade')
    generate_ade20k_semantic(again_ade, seed=0, **TINY)
    assert _same_tree(ade_root, again_ade)

    other = str(tmp_path / 'other')
    generate_coco_instance(other, seed=1, **TINY)
    assert _load(other, 'val2017')['annotations'] != \
        _load(coco_root, 'val2017')['annotations']
    for i in (1, 2, 3):
        assert not filecmp.cmp(osp.join(coco_root, f'train2017/{i:012d}.jpg'),
                               osp.join(other, f'train2017/{i:012d}.jpg'),
                               shallow=False)

    # Image i depends on (seed, split, i) only, not on the number of images.
    fewer = str(tmp_path / 'fewer')
    generate_coco_instance(fewer, seed=0, **dict(TINY, num_train=2))
    assert filecmp.cmp(osp.join(coco_root, 'train2017/000000000002.jpg'),
                       osp.join(fewer, 'train2017/000000000002.jpg'),
                       shallow=False)


def test_skip_regenerate_and_foreign_dirs(tmp_path):
    root = str(tmp_path / 'c')
    first = generate_coco_instance(root, seed=0, **dict(TINY, num_val=1))
    assert first['generated']
    img = osp.join(root, 'train2017/000000000001.jpg')
    os.utime(img, (1, 1))  # a rewrite would change the mtime
    second = generate_coco_instance(root, seed=0, **dict(TINY, num_val=1))
    assert not second['generated'] and os.stat(img).st_mtime == 1
    assert second['splits'] == first['splits']
    forced = generate_coco_instance(root, seed=0, overwrite=True,
                                    **dict(TINY, num_val=1))
    assert forced['generated'] and os.stat(img).st_mtime != 1
    # New arguments regenerate in place; stale images do not survive.
    generate_coco_instance(root, seed=0, **dict(TINY, num_train=1, num_val=1))
    assert os.listdir(osp.join(root, 'train2017')) == ['000000000001.jpg']

    # A directory the generator did not write is refused unless overwriting,
    # and even then only the generator's own paths are replaced.
    foreign = tmp_path / 'f'
    (foreign / 'train2017').mkdir(parents=True)
    (foreign / 'keep.txt').write_text('user data')
    with pytest.raises(FileExistsError, match='overwrite'):
        generate_coco_instance(str(foreign), **dict(TINY, num_val=1))
    generate_coco_instance(str(foreign), overwrite=True,
                           **dict(TINY, num_val=1))
    assert (foreign / 'keep.txt').read_text() == 'user data'

    # An interrupted run (stamp without summary) is redone, not refused.
    stamp = osp.join(root, STAMP_NAME)
    with open(stamp) as f:
        data = json.load(f)
    data['summary'] = None
    with open(stamp, 'w') as f:
        json.dump(data, f)
    assert generate_coco_instance(
        root, seed=0, **dict(TINY, num_train=1, num_val=1))['generated']


@pytest.mark.parametrize('kwargs, match', [
    (dict(num_train=0), 'num_train'),
    (dict(image_size=(32, 256)), 'image_size'),
    (dict(image_size=(320,)), 'image_size'),
    (dict(objects_per_image=(3, 1)), 'objects_per_image'),
    (dict(object_size=(40, 300)), 'short side'),
])
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_coco_instance(str(tmp_path / 'x'), **kwargs)
    assert not (tmp_path / 'x').exists()


def test_cli(tmp_path, capsys):
    import importlib.util
    path = osp.join(osp.dirname(__file__), '..', '..', 'tools',
                    'dataset_converters', 'generate_demo_data.py')
    spec = importlib.util.spec_from_file_location('generate_demo_data', path)
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    cli.main(['--out', str(tmp_path), '--num-train', '1', '--num-val', '1',
              '--image-size', '128', '96', '--object-size', '24', '60'])
    out = capsys.readouterr().out
    assert str(tmp_path / 'demo_coco') in out and 'generated' in out
    assert str(tmp_path / 'demo_ade20k') in out
    assert (tmp_path / 'demo_coco/train2017/000000000001.jpg').is_file()
    assert (tmp_path / 'demo_ade20k/annotations/validation/'
            'ADE_val_00000001.png').is_file()
    with pytest.raises(SystemExit, match='object_size'):
        cli.main(['--out', str(tmp_path / 'bad'), '--object-size', '24', '999'])


# ---------------------------------------------------------------------------
# content
# ---------------------------------------------------------------------------
def test_coco_annotations_valid(coco_root):
    maskUtils = pytest.importorskip('pycocotools.mask')
    from pycocotools.coco import COCO
    for split in ('train2017', 'val2017'):
        coco = COCO(osp.join(coco_root, 'annotations',
                             f'instances_{split}.json'))
        assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == \
            list(DEMO_DET_CLASSES)
        counts = [len(coco.getAnnIds(imgIds=i)) for i in coco.getImgIds()]
        assert all(1 <= n <= 5 for n in counts)
        for ann in coco.loadAnns(coco.getAnnIds()):
            img = coco.imgs[ann['image_id']]
            x, y, w, h = ann['bbox']
            assert ann['iscrowd'] == 0 and ann['area'] > 0 and w > 0 < h
            assert 0 <= x and x + w <= img['width']
            assert 0 <= y and y + h <= img['height']
            assert all(len(p) >= 6 and len(p) % 2 == 0
                       for p in ann['segmentation'])
            mask = coco.annToMask(ann)
            assert abs(mask.sum() - ann['area']) <= 0.15 * ann['area']
            rows = np.flatnonzero(mask.any(1))
            cols = np.flatnonzero(mask.any(0))
            box = [cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]
            assert np.allclose(box, [x, y, x + w, y + h], atol=1.01)
            assert maskUtils.area(maskUtils.encode(
                np.asfortranarray(mask))) == mask.sum()


def test_polygons_follow_the_rendered_masks(coco_root):
    """Re-render the scenes: each polygon rasterizes (as COCO does) exactly
    to the visible mask of its object, and the image shows the class's
    colour."""
    pytest.importorskip('pycocotools')
    from pycocotools.coco import COCO
    coco = COCO(osp.join(coco_root, 'annotations/instances_train2017.json'))
    w, h = TINY['image_size']
    for index, image_id in enumerate(sorted(coco.getImgIds())):
        rng = demo_data._image_rng(0, 0, index)
        _, _, instances, classes, _ = demo_data._render_scene(
            rng, w, h, (1, 5), TINY['object_size'], True)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        assert [a['category_id'] - 1 for a in anns] == classes
        image = cv2.imread(osp.join(coco_root, 'train2017',
                                    coco.imgs[image_id]['file_name']))[..., ::-1]
        for k, ann in enumerate(anns, start=1):
            truth = instances == k
            # Vertices sit a quarter pixel inside the mask boundary, so
            # COCO's rasterizer (pixel in iff its centre is) gives it back.
            np.testing.assert_array_equal(coco.annToMask(ann), truth)
            assert ann['area'] == truth.sum()
            # Colour cue: the object's mean colour has its class's hue.
            mean = image[cv2.erode(truth.astype(np.uint8),
                                   np.ones((3, 3))) > 0].mean(0) / 255
            hue = colorsys.rgb_to_hsv(*mean)[0] * 360
            lo, hi = demo_data._CLASS_HUES[classes[k - 1]]
            assert (hue - lo) % 360 <= (hi - lo) + 10 or \
                (lo - hue) % 360 <= 10, (hue, lo, hi)


def test_ade_label_maps(ade_root):
    valid = {0} | {i + 1 for i in DEMO_SEG_ADE20K_INDICES}
    seen = set()
    for split in ('training', 'validation'):
        folder = osp.join(ade_root, 'annotations', split)
        for name in sorted(os.listdir(folder)):
            label = cv2.imread(osp.join(folder, name), cv2.IMREAD_UNCHANGED)
            assert label.dtype == np.uint8 and label.shape == (128, 160)
            values = set(np.unique(label).tolist())
            assert values <= valid
            seen |= values
    # Backgrounds and shapes both occur; "other" (0) only on thin seams.
    assert len(seen - {0}) >= 5


# ---------------------------------------------------------------------------
# real OpenMMLab datasets and metrics
# ---------------------------------------------------------------------------
def _coco_dataset(root, split):
    pytest.importorskip('mmdet')
    from mmcv.transforms import LoadImageFromFile
    from mmdet.datasets import CocoDataset
    from mmdet.datasets.transforms import LoadAnnotations
    return CocoDataset(
        data_root=root, ann_file=f'annotations/instances_{split}.json',
        data_prefix=dict(img=f'{split}/'), test_mode=True,
        metainfo=dict(classes=DEMO_DET_CLASSES, palette=DEMO_DET_PALETTE),
        pipeline=[LoadImageFromFile(),
                  LoadAnnotations(with_bbox=True, with_mask=True)])


def test_mmdet_coco_dataset_and_metric(coco_root):
    dataset = _coco_dataset(coco_root, 'val2017')
    import torch
    from mmdet.evaluation import CocoMetric
    coco = _load(coco_root, 'val2017')
    assert len(dataset) == 3
    metric = CocoMetric(
        ann_file=osp.join(coco_root, 'annotations/instances_val2017.json'),
        metric=['bbox', 'segm'])
    metric.dataset_meta = dataset.metainfo
    samples = []
    for i in range(len(dataset)):
        item = dataset[i]
        anns = [a for a in coco['annotations']
                if a['image_id'] == item['img_id']]
        masks = item['gt_masks'].to_ndarray()
        assert item['img'].shape == (128, 160, 3)
        assert masks.shape == (len(anns), 128, 160) and len(anns) >= 1
        assert item['gt_bboxes_labels'].tolist() == \
            [a['category_id'] - 1 for a in anns]
        for mask, ann in zip(masks, anns):
            assert abs(int(mask.sum()) - ann['area']) <= 0.15 * ann['area']
        # Ground truth as predictions.
        n = len(anns)
        samples.append(dict(
            img_id=item['img_id'], ori_shape=item['ori_shape'],
            pred_instances=dict(
                bboxes=torch.as_tensor(item['gt_bboxes'].tensor),
                scores=torch.ones(n),
                labels=torch.as_tensor(item['gt_bboxes_labels']),
                masks=torch.as_tensor(masks).bool())))
    metric.process({}, samples)
    results = metric.evaluate(len(dataset))
    assert results['coco/bbox_mAP'] == pytest.approx(1.0)
    assert results['coco/segm_mAP'] == pytest.approx(1.0)

    # A wrong prediction is not rewarded: the metric really reads the data.
    metric.results.clear()
    for s in samples:
        s['pred_instances']['labels'] = (s['pred_instances']['labels'] + 1) % 4
    metric.process({}, samples)
    assert metric.evaluate(len(dataset))['coco/bbox_mAP'] < 0.5


def test_mmseg_ade20k_dataset_and_metric(ade_root):
    pytest.importorskip('mmseg')
    import torch
    from mmcv.transforms import LoadImageFromFile
    from mmseg.datasets import ADE20KDataset
    from mmseg.datasets.transforms import LoadAnnotations
    from mmseg.evaluation import IoUMetric

    ade_classes = ADE20KDataset.METAINFO['classes']
    assert [ade_classes[i] for i in DEMO_SEG_ADE20K_INDICES] == \
        list(DEMO_SEG_CLASSES)
    assert len({tuple(c) for c in DEMO_SEG_PALETTE}) == len(DEMO_SEG_CLASSES)

    def build(**kwargs):
        return ADE20KDataset(
            data_root=ade_root, data_prefix=dict(
                img_path='images/validation',
                seg_map_path='annotations/validation'),
            pipeline=[LoadImageFromFile(), LoadAnnotations()], **kwargs)

    demo = build(metainfo=dict(classes=DEMO_SEG_CLASSES,
                               palette=DEMO_SEG_PALETTE))
    full = build()  # the stock 150-class dataset reads the same files
    assert len(demo) == len(full) == 3
    metric = IoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = demo.metainfo
    for i in range(len(demo)):
        item, item_full = demo[i], full[i]
        label, label_full = item['gt_seg_map'], item_full['gt_seg_map']
        assert item['img'].shape == (128, 160, 3)
        assert set(np.unique(label).tolist()) <= set(range(8)) | {255}
        # Same pixels, two numberings: demo class c <-> ADE20K index.
        lut = np.full(256, 255, np.int64)
        lut[list(DEMO_SEG_ADE20K_INDICES)] = np.arange(8)
        np.testing.assert_array_equal(lut[label_full], label)
        gt = torch.as_tensor(label.astype(np.int64))[None]
        metric.process({}, [dict(pred_sem_seg=dict(data=gt),
                                 gt_sem_seg=dict(data=gt))])
    results = metric.evaluate(len(demo))
    assert results['mIoU'] == pytest.approx(100.0)
    assert results['aAcc'] == pytest.approx(100.0)

"""The generated COCO-keypoints demo set: deterministic, valid COCO person keypoints whose
joints lie on the drawn figures with the person's own left and right, and read by mmpose's
real ``CocoDataset`` / ``CocoMetric`` (those parts skip without mmpose)."""
import filecmp
import json
import math
import os
import os.path as osp

import numpy as np
import pytest

cv2 = pytest.importorskip('cv2')

from mlla_mm.datasets import demo_pose  # noqa: E402
from mlla_mm.datasets.demo_data import STAMP_NAME  # noqa: E402
from mlla_mm.datasets.demo_pose import (COCO_KEYPOINTS, COCO_SKELETON,  # noqa: E402
                                        DETECTIONS_FILE, generate_coco_pose)

TINY = dict(num_train=6, num_val=4, image_size=(192, 160), person_height=(50, 150))


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('pose') / 'coco_pose')
    generate_coco_pose(path, seed=0, **TINY)
    return path


def _load(root, split='val2017'):
    with open(osp.join(root, 'annotations', f'person_keypoints_{split}.json')) as f:
        return json.load(f)


def _files(root):
    return sorted(osp.relpath(osp.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def test_same_arguments_give_the_same_bytes(root, tmp_path):
    again = str(tmp_path / 'again')
    generate_coco_pose(again, seed=0, **TINY)
    files = _files(root)
    assert files == _files(again)
    _, mismatch, errors = filecmp.cmpfiles(root, again, files, shallow=False)
    assert not mismatch and not errors
    other = str(tmp_path / 'other')
    generate_coco_pose(other, seed=1, **TINY)
    assert not filecmp.cmp(osp.join(root, 'val2017', '000000000001.jpg'),
                           osp.join(other, 'val2017', '000000000001.jpg'), shallow=False)


def test_second_call_is_a_no_op_and_new_arguments_regenerate(root, tmp_path):
    summary = generate_coco_pose(root, seed=0, **TINY)
    assert summary['generated'] is False
    assert summary['splits']['val2017']['images'] == TINY['num_val']
    path = str(tmp_path / 'p')
    generate_coco_pose(path, seed=0, **TINY)
    assert generate_coco_pose(path, seed=0, **dict(TINY, num_val=2))['generated'] is True
    assert len(os.listdir(osp.join(path, 'val2017'))) == 2
    with open(osp.join(path, STAMP_NAME)) as f:
        assert json.load(f)['params']['kind'] == 'coco_pose'


def test_layout_and_category(root):
    for split, count in (('train2017', TINY['num_train']), ('val2017', TINY['num_val'])):
        coco = _load(root, split)
        assert len(coco['images']) == count == len(os.listdir(osp.join(root, split)))
        (category,) = coco['categories']
        assert category['id'] == 1 and category['name'] == 'person'
        assert tuple(category['keypoints']) == COCO_KEYPOINTS
        assert [tuple(s) for s in category['skeleton']] == list(COCO_SKELETON)
    assert COCO_KEYPOINTS[5:7] == ('left_shoulder', 'right_shoulder') and len(COCO_KEYPOINTS) == 17


def test_annotations_are_valid_coco_keypoints(root):
    width, height = TINY['image_size']
    for split in ('train2017', 'val2017'):
        coco = _load(root, split)
        ids = {im['id'] for im in coco['images']}
        assert coco['annotations'], split
        for ann in coco['annotations']:
            assert ann['image_id'] in ids and ann['category_id'] == 1 and ann['iscrowd'] == 0
            kpts = np.array(ann['keypoints'], np.float64).reshape(17, 3)
            assert set(kpts[:, 2].tolist()) <= {0, 1, 2}
            assert ann['num_keypoints'] == int((kpts[:, 2] > 0).sum()) >= 6
            assert (kpts[kpts[:, 2] == 0, :2] == 0).all(), 'unlabelled keypoints are (0, 0)'
            labelled = kpts[kpts[:, 2] > 0, :2]
            assert (labelled >= 0).all() and (labelled[:, 0] < width).all() \
                and (labelled[:, 1] < height).all()
            x, y, w, h = ann['bbox']
            assert x >= 0 and y >= 0 and x + w <= width and y + h <= height and w > 0 and h > 0
            assert 0 < ann['area'] <= w * h
            assert ann['segmentation'] and all(len(p) >= 6 for p in ann['segmentation'])


def test_visible_keypoints_lie_on_their_figure(root):
    """A keypoint flagged visible lies on the pixels the annotation says are the figure's."""
    from pycocotools import mask as mask_util
    width, height = TINY['image_size']
    checked = 0
    for split in ('train2017', 'val2017'):
        for ann in _load(root, split)['annotations']:
            rles = mask_util.frPyObjects(ann['segmentation'], height, width)
            mask = mask_util.decode(mask_util.merge(rles)).astype(np.uint8)
            mask = cv2.dilate(mask, np.ones((5, 5), np.uint8)).astype(bool)
            kpts = np.array(ann['keypoints'], np.float64).reshape(17, 3)
            for x, y, v in kpts:
                if v == 2:
                    assert mask[int(round(y)), int(round(x))], ann['id']
                    checked += 1
    assert checked > 50


def test_flags_and_variety_on_a_larger_set(tmp_path):
    summary = generate_coco_pose(str(tmp_path / 'p'), num_train=1, num_val=30,
                                 image_size=(256, 192), person_height=(60, 180), seed=3)
    val = summary['splits']['val2017']
    flags = val['keypoints']
    assert flags['visible'] > flags['occluded'] > 0 and flags['unlabelled'] > 0
    assert set(val['views']) == {'front', 'back', 'side'}
    assert set(val['activities']) == {'stand', 'walk', 'active'}
    assert val['images_with_occluder'] > 0 and val['persons_cut_by_border'] > 0
    assert max(int(n) for n in val['persons_per_image']['histogram']) > 1
    with open(tmp_path / 'p' / DETECTIONS_FILE) as f:
        dets = json.load(f)
    assert len(dets) == val['persons']
    assert all(d['category_id'] == 1 and 0.5 <= d['score'] <= 1 and len(d['bbox']) == 4
               for d in dets)


def _neutral(yaw_degrees):
    pose = dict(mode='stand', lean=0.0, side_bend=0.0, head=(0.0, 0.0),
                arms=[(math.radians(20), 0.0, 0.0)] * 2, twists=[0.0, 0.0],
                legs=[(math.radians(5), 0.0, 0.0)] * 2)
    body = dict(torso=0.30, shoulder=0.115, hip=0.085, upper_arm=0.165, forearm=0.145,
                thigh=0.245, shin=0.24, neck=0.095, girth=1.0)
    points, _ = demo_pose._skeleton(pose, body)
    turn = demo_pose._rot_y(math.radians(yaw_degrees))
    return {k: turn @ v for k, v in points.items()}


def test_left_is_the_persons_left():
    """Facing the camera, the person's left side is on the image's right (COCO's
    convention); seen from the back, on the image's left. The face is towards the viewer
    (+z) when facing, away when not; the head is above, the ankles below."""
    front, back = _neutral(0), _neutral(180)
    for joint in ('shoulder', 'elbow', 'wrist', 'hip', 'knee', 'ankle', 'eye', 'ear'):
        assert front[f'left_{joint}'][0] > front[f'right_{joint}'][0], joint
        assert back[f'left_{joint}'][0] < back[f'right_{joint}'][0], joint
    assert front['nose'][2] > front['head'][2] > back['nose'][2]
    assert front['nose'][1] < front['left_shoulder'][1] < front['left_hip'][1] \
        < front['left_knee'][1] < front['left_ankle'][1]


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match='person_height'):
        generate_coco_pose(str(tmp_path / 'a'), person_height=(10, 50))
    with pytest.raises(ValueError, match='short side'):
        generate_coco_pose(str(tmp_path / 'b'), image_size=(320, 128), person_height=(40, 200))
    with pytest.raises(ValueError, match='persons_per_image'):
        generate_coco_pose(str(tmp_path / 'c'), persons_per_image=(3, 1))
    foreign = tmp_path / 'foreign'
    foreign.mkdir()
    (foreign / 'mine.txt').write_text('x')
    with pytest.raises(FileExistsError, match='not written by the demo data generator'):
        generate_coco_pose(str(foreign), **TINY)


def test_command_line_writes_the_pose_set(tmp_path, capsys):
    import importlib.util
    script = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'tools',
                      'dataset_converters', 'generate_demo_data.py')
    spec = importlib.util.spec_from_file_location('generate_demo_data', script)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.main(['--kind', 'pose', '--out', str(tmp_path), '--num-train', '2', '--num-val', '1',
               '--image-size', '160', '128', '--person-height', '50', '120',
               '--persons-per-image', '2', '3'])
    assert 'coco_pose' in capsys.readouterr().out
    coco = _load(str(tmp_path / 'demo_coco_pose'), 'train2017')
    assert len(coco['images']) == 2
    assert not osp.exists(tmp_path / 'demo_coco')
    with pytest.raises(SystemExit, match='person_height'):
        tool.main(['--kind', 'pose', '--out', str(tmp_path / 'bad'), '--person-height', '9', '50'])


# ---------------------------------------------------------------------------
# read by mmpose itself
# ---------------------------------------------------------------------------
def test_mmpose_dataset_reads_it(root):
    pytest.importorskip('mmpose')
    from mmpose.datasets import CocoDataset
    train = CocoDataset(data_root=root, ann_file='annotations/person_keypoints_train2017.json',
                        data_prefix=dict(img='train2017/'), data_mode='topdown', pipeline=[])
    coco = _load(root, 'train2017')
    assert len(train) == len(coco['annotations'])
    item = train[0]
    assert item['keypoints'].shape == (1, 17, 2) and item['bbox'].shape == (1, 4)
    assert osp.isfile(item['img_path'])
    dets = CocoDataset(data_root=root, ann_file='annotations/person_keypoints_val2017.json',
                       bbox_file=osp.join(root, DETECTIONS_FILE), data_mode='topdown',
                       data_prefix=dict(img='val2017/'), test_mode=True, pipeline=[])
    assert len(dets) == len(_load(root)['annotations'])


def test_coco_metric_scores_the_ground_truth_as_perfect(root):
    """The ground truth fed to mmpose's CocoMetric as predictions scores AP 1: the file is
    what xtcocotools' OKS evaluation expects."""
    pytest.importorskip('mmpose')
    from mmpose.datasets import CocoDataset
    from mmpose.evaluation import CocoMetric
    dataset = CocoDataset(data_root=root, ann_file='annotations/person_keypoints_val2017.json',
                          data_prefix=dict(img='val2017/'), data_mode='topdown',
                          test_mode=True, pipeline=[])
    metric = CocoMetric(ann_file=osp.join(root, 'annotations', 'person_keypoints_val2017.json'))
    metric.dataset_meta = dataset.metainfo
    for i in range(len(dataset)):
        item = dataset[i]
        pred = dict(keypoints=item['keypoints'], keypoint_scores=np.ones((1, 17)),
                    bbox_scores=np.ones(1))
        metric.process([], [dict(id=item['id'], img_id=item['img_id'], pred_instances=pred,
                                 gt_instances=dict(bbox_scores=np.ones(1)))])
    result = metric.evaluate(len(dataset))
    assert result['coco/AP'] == pytest.approx(1.0)

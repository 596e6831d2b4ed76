"""`tools/demo.py` end to end on tiny generated data (metrics, pictures, curves) and
`tools/infer.py` on the generated images with the checkpoint the demo trained."""
import glob
import importlib.util
import json
import os.path as osp

import numpy as np
import pytest

from tool_runner import PY, ROOT, run_tool

pytest.importorskip('mmdet')
pytest.importorskip('mmseg')
mmcv = pytest.importorskip('mmcv')

# 4 of the 8 generated training images at 160x128, batch 2: 2 iterations, then evaluation
DEMO_OPTS = ['train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
             'train_dataloader.batch_size=2', 'train_dataloader.dataset.indices=4',
             'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
             'train_dataloader.persistent_workers=False', 'val_dataloader.persistent_workers=False',
             'val_dataloader.batch_size=2', 'default_hooks.logger.interval=1',
             'train_dataloader.dataset.pipeline.2.scale=(160,128)',
             'val_dataloader.dataset.pipeline.1.scale=(160,128)',
             'model.test_cfg.rcnn.max_per_img=10']   # an untrained model fills every slot


@pytest.fixture(scope='module')
def demo_run(demo_coco, tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('demo'))
    out = run_tool([PY, 'tools/demo.py', '--task', 'det', '--data-root', demo_coco,
                    '--work-dir', work_dir, '--num-pictures', '2', '--cfg-options', *DEMO_OPTS])
    with open(osp.join(work_dir, 'demo_results.json')) as f:
        return work_dir, out, json.load(f)['det']


def _gray(path):
    return mmcv.imread(path).astype(np.float32)


def test_demo_writes_and_prints_pictures(demo_run, demo_coco):
    work_dir, out, results = demo_run
    pictures = results['pictures']
    names = sorted(osp.basename(p) for p in pictures)
    assert names == ['predictions.jpg', 'training_curves.png', 'val_000000000001.png',
                     'val_000000000004.png'], names
    for path in pictures:
        assert osp.isfile(path) and path in out   # written and printed
    assert {'coco/bbox_mAP', 'coco/segm_mAP'} <= set(results['trained'])

    # ground truth | prediction, under a title band; the ground-truth half shows the
    # annotations drawn on the input image (the prediction half is checked in test_visualize)
    source = _gray(osp.join(demo_coco, 'val2017', '000000000001.jpg'))
    picture = _gray(next(p for p in pictures if p.endswith('val_000000000001.png')))
    h, w = source.shape[:2]
    assert picture.shape[:2] == (h + 22, 2 * w)
    gt_half = picture[22:, :w]
    assert np.abs(gt_half - source).mean() > 3.0   # masks/boxes/labels drawn over the input

    curves = _gray(next(p for p in pictures if p.endswith('training_curves.png')))
    assert curves.shape[0] > 200 and curves.std() > 10   # a plot, not a blank canvas
    train_rows = [json.loads(line) for line in open(glob.glob(
        osp.join(work_dir, 'det', '*', 'vis_data', 'scalars.json'))[0]) if 'loss' in line]
    assert len(train_rows) == 2   # one point per iteration went into the plot


def _infer(args, capsys):
    """tools/infer.py in this process (its model building is what costs, not the imports)."""
    spec = importlib.util.spec_from_file_location('infer', osp.join(ROOT, 'tools', 'infer.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    code = tool.main([osp.join(ROOT, args[0]), *args[1:]])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_infer_detection_with_an_unreadable_image(demo_run, demo_coco, tmp_path, capsys):
    work_dir = demo_run[0]
    checkpoint = open(osp.join(work_dir, 'det', 'last_checkpoint')).read().strip()
    broken = tmp_path / 'broken.jpg'
    broken.write_bytes(b'this is not a JPEG')
    out_dir = tmp_path / 'out'
    code, out = _infer(['configs/demo/mask_rcnn_mlla_demo.py', checkpoint,
                        osp.join(demo_coco, 'val2017'), str(broken),
                        osp.join(demo_coco, 'train2017', '00000000000[1].jpg'),
                        '--out-dir', str(out_dir), '--score-thr', '0',
                        '--cfg-options', 'model.test_cfg.rcnn.max_per_img=5'], capsys)
    assert code == 1, out[-3000:]
    assert f'{broken}: cannot be decoded as an image' in out, out[-3000:]
    summary = json.loads((out_dir / 'results.json').read_text())
    assert summary['task'] == 'mmdet' and summary['classes'] == [
        'circle', 'square', 'triangle', 'star']
    assert [e['input'] for e in summary['errors']] == [str(broken)]
    assert len(summary['images']) == 4 + 1   # the folder's 4, the glob's 1: the rest went on
    # the two 000000000001.jpg (val folder, train glob) do not overwrite each other
    assert len({r['pred'] for r in summary['images']}) == 5

    from pycocotools import mask as mask_util
    record = summary['images'][0]
    pred = json.loads(open(record['pred']).read())
    n = len(pred['scores'])
    assert 0 < n <= 5 and len(pred['boxes']) == len(pred['labels']) == len(pred['masks']) == n
    assert set(pred['label_names']) <= set(summary['classes'])
    image = mmcv.imread(record['input'])
    mask = mask_util.decode(dict(size=pred['masks'][0]['size'],
                                 counts=pred['masks'][0]['counts'].encode()))
    assert mask.shape == image.shape[:2] == tuple(pred['image_size'])
    picture = mmcv.imread(record['vis'])
    assert picture.shape[1] == image.shape[1]
    assert np.abs(picture[22:].astype(float) - image).mean() > 1.0   # detections drawn


def test_infer_segmentation(demo_ade20k, tmp_path, capsys):
    out_dir = tmp_path / 'out'
    code, out = _infer(['configs/demo/upernet_mlla_demo.py', 'none',
                        osp.join(demo_ade20k, 'images', 'validation'), '--out-dir', str(out_dir)],
                       capsys)
    assert code == 0, out[-3000:]
    summary = json.loads((out_dir / 'results.json').read_text())
    assert summary['task'] == 'mmseg' and len(summary['images']) == 3
    for record in summary['images']:
        image = mmcv.imread(record['input'])
        label = mmcv.imread(record['pred'], flag='unchanged')
        assert label.shape == image.shape[:2] and label.max() < len(summary['classes'])
        picture = mmcv.imread(record['vis'])
        assert np.abs(picture[22:].astype(float) - image).mean() > 1.0   # colour overlay

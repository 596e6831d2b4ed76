"""Pictures of predictions (beside the ground truth) and training curves, on synthetic inputs."""
import json
import types

import numpy as np
import pytest
import torch

from mlla_mm.utils import visualize

H, W = 96, 128


def _image():
    rng = np.random.default_rng(0)
    return rng.integers(90, 110, (H, W, 3), dtype=np.uint8)   # dull texture, BGR


def _model(codebase, classes, palette):
    return types.SimpleNamespace(codebase=codebase,
                                 dataset_meta=dict(classes=classes, palette=palette))


def _det_sample(with_gt):
    pytest.importorskip('mmdet')
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    sample = DetDataSample(metainfo=dict(img_shape=(H, W), ori_shape=(H, W)))
    mask = torch.zeros(1, H, W, dtype=torch.bool)
    mask[0, 20:60, 30:90] = True
    pred = InstanceData(bboxes=torch.tensor([[30., 20., 90., 60.]]), labels=torch.tensor([1]),
                        scores=torch.tensor([0.9]), masks=mask)
    sample.pred_instances = pred
    if with_gt:
        sample.gt_instances = InstanceData(bboxes=torch.tensor([[10., 10., 50., 50.]]),
                                           labels=torch.tensor([0]), masks=mask.numpy())
    return sample


def test_detection_picture_shows_prediction_beside_ground_truth():
    model = _model('mmdet', ('circle', 'square'), [(220, 20, 60), (0, 160, 60)])
    vis = visualize.make_visualizer(model, name='test_det_vis')
    image = _image()
    drawn = visualize.draw_sample(vis, image, _det_sample(with_gt=True), with_gt=True)
    assert drawn.shape == (H + 22, 2 * W, 3)
    rgb = image[..., ::-1].astype(float)
    gt, pred = drawn[22:, :W].astype(float), drawn[22:, W:].astype(float)
    assert np.abs(gt - rgb).mean() > 3 and np.abs(pred - rgb).mean() > 3
    assert not np.array_equal(gt, pred)
    # below the score threshold nothing is drawn on the prediction side
    drawn = visualize.draw_sample(vis, image, _det_sample(with_gt=False), with_gt=True,
                                  score_thr=0.95)
    assert drawn.shape == (H + 22, W, 3)
    np.testing.assert_array_equal(drawn[22:], image[..., ::-1])


def test_segmentation_picture_is_a_colour_overlay():
    pytest.importorskip('mmseg')
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    model = _model('mmseg', ('sky', 'grass'), [[6, 230, 230], [4, 250, 7]])
    vis = visualize.make_visualizer(model, name='test_seg_vis')
    sample = SegDataSample(metainfo=dict(img_shape=(H, W), ori_shape=(H, W)))
    label = torch.zeros(1, H, W, dtype=torch.long)
    label[:, H // 2:] = 1
    sample.pred_sem_seg = PixelData(data=label)
    sample.gt_sem_seg = PixelData(data=1 - label)
    drawn = visualize.draw_sample(vis, _image(), sample, with_gt=True)
    assert drawn.shape == (H + 22, 2 * W, 3)
    pred = drawn[22:, W:].astype(float)
    # top half sky-coloured, bottom half grass-coloured
    assert pred[: H // 3, :, 2].mean() > pred[-H // 3:, :, 2].mean() + 40   # blue channel


def test_training_curves(tmp_path):
    scalars = tmp_path / 'scalars.json'
    rows = [{'lr': 1e-3, 'loss': 2.0 / (i + 1), 'decode.loss_ce': 1.0 / (i + 1),
             'epoch': 1 + i // 5, 'iter': i + 1, 'step': i + 1} for i in range(10)]
    rows.insert(5, {'coco/bbox_mAP': 0.2, 'data_time': 0.1, 'time': 1.0, 'step': 1})
    rows.append({'coco/bbox_mAP': 0.5, 'data_time': 0.1, 'time': 1.0, 'step': 2})
    scalars.write_text('\n'.join(json.dumps(r) for r in rows) + '\n')
    train, evals = visualize.read_scalars(str(scalars))
    assert len(train) == 10 and len(evals) == 2
    assert visualize.loss_keys(train) == ['loss', 'decode.loss_ce']
    out = visualize.plot_training_curves(str(scalars), str(tmp_path / 'curves.png'),
                                         before_training={'coco/bbox_mAP': 0.0})
    import mmcv
    picture = mmcv.imread(out)
    assert picture.shape[0] > 200 and picture.std() > 10
    with pytest.raises(ValueError, match='no training losses'):
        scalars.write_text(json.dumps(rows[5]) + '\n')
        visualize.plot_training_curves(str(scalars), str(tmp_path / 'x.png'))


def test_pick_evenly():
    assert visualize.pick_evenly(50, 4) == [0, 16, 33, 49]
    assert visualize.pick_evenly(3, 4) == [0, 1, 2]
    assert visualize.pick_evenly(10, 1) == [0]

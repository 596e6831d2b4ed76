"""VM-UNet + MHS as an mmseg model: BCE + Dice loss, the pooled binary metric, the ISIC folder
dataset and its transforms, the segmentor reading MHS-VM's released file layout.

The official-layout checks use ``tests/data/mhs_golden.pt`` (see ``test_mhs.py``'s header).
"""
import os

import numpy as np
import pytest
import torch

pytest.importorskip('mmseg')
pytest.importorskip('mmcv')

import mlla_mm  # noqa: E402,F401
import mlla_mm.datasets.isic  # noqa: E402,F401  (registers the dataset and transforms)
import mlla_mm.models.segmentors  # noqa: E402,F401
from mlla_mm.evaluation import BinarySegMetric  # noqa: E402
from mlla_mm.models.losses import BinaryDiceLoss  # noqa: E402
from mlla_mm.utils.checkpoint import CheckpointError  # noqa: E402

from test_mhs import GOLDEN, official_state_dict, rel_err  # noqa: E402


pytestmark = pytest.mark.usefixtures('one_torch_thread')  # tests/conftest.py


@pytest.fixture(scope='module', autouse=True)
def _mmseg_scope():
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')


@pytest.fixture(scope='module')
def golden():
    return torch.load(GOLDEN, weights_only=True)


# -- loss and metric --------------------------------------------------------------------
def test_binary_dice_loss_is_upstreams():
    logits = torch.randn(3, 1, 9, 7)
    target = (torch.rand(3, 9, 7) > 0.6).long()
    prob, t = logits.sigmoid().flatten(1), target.float().flatten(1)
    upstream = 1 - ((2 * (prob * t).sum(1) + 1) / (prob.sum(1) + t.sum(1) + 1)).mean()
    assert torch.allclose(BinaryDiceLoss()(logits, target), upstream)
    # ignored pixels (batch padding) count for nothing
    padded = torch.cat([target, torch.full((3, 9, 2), 255)], dim=2)
    padded_logits = torch.cat([logits, torch.randn(3, 1, 9, 2) * 9], dim=3)
    assert torch.allclose(BinaryDiceLoss(loss_weight=2.0)(padded_logits, padded), 2 * upstream)
    with pytest.raises(ValueError, match='out_channels=1'):
        BinaryDiceLoss()(torch.randn(1, 2, 4, 4), torch.zeros(1, 4, 4).long())


def _sample(pred, gt):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    sample = SegDataSample()
    sample.pred_sem_seg = PixelData(data=torch.as_tensor(pred)[None])
    sample.gt_sem_seg = PixelData(data=torch.as_tensor(gt)[None])
    return sample.to_dict()


def test_binary_metric_pools_pixels_over_images():
    rng = np.random.default_rng(0)
    preds = [rng.integers(0, 2, (5, 6)) for _ in range(3)]
    gts = [rng.integers(0, 2, (5, 6)) for _ in range(3)]
    gts[1][0, :] = 255   # ignored
    metric = BinarySegMetric()
    metric.process({}, [_sample(p, g) for p, g in zip(preds, gts)])
    result = metric.compute_metrics(metric.results)
    p = np.concatenate([x.ravel() for x in preds])
    g = np.concatenate([x.ravel() for x in gts])
    p, g = p[g != 255] == 1, g[g != 255] == 1
    tp, fp, fn, tn = (p & g).sum(), (p & ~g).sum(), (~p & g).sum(), (~p & ~g).sum()
    expected = dict(IoU=tp / (tp + fp + fn), Dice=2 * tp / (2 * tp + fp + fn),
                    Accuracy=(tp + tn) / g.size, Sensitivity=tp / (tp + fn),
                    Specificity=tn / (tn + fp))
    assert result == {k: round(100 * float(v), 2) for k, v in expected.items()}
    empty = BinarySegMetric()
    empty.process({}, [_sample(np.zeros((2, 2), int), np.zeros((2, 2), int))])
    assert empty.compute_metrics(empty.results) == dict(
        IoU=0.0, Dice=0.0, Accuracy=100.0, Sensitivity=0.0, Specificity=100.0)


# -- data -------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def isic_root(tmp_path_factory):
    from mlla_mm.datasets.demo_medseg import generate_isic_lesions
    root = str(tmp_path_factory.mktemp('isic'))
    generate_isic_lesions(root, num_train=3, num_val=2, image_size=(72, 56), seed=3)
    return root


def test_isic_dataset_and_transforms(isic_root):
    from mmseg.registry import DATASETS
    dataset = DATASETS.build(dict(
        type='ISICDataset', data_root=isic_root,
        data_prefix=dict(img_path='train/images', seg_map_path='train/masks'),
        pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadBinaryMask'),
                  dict(type='MinMaxNormalize'), dict(type='PackSegInputs')]))
    assert len(dataset) == 3 and dataset.metainfo['classes'] == ('background', 'lesion')
    info = dataset.get_data_info(0)
    assert info['seg_map_path'].endswith('train/masks/ISIC_0000001_segmentation.png')
    sample = dataset[0]
    image, label = sample['inputs'], sample['data_samples'].gt_sem_seg.data
    assert image.shape == (3, 56, 72) and label.shape == (1, 56, 72)
    assert float(image.min()) == 0.0 and abs(float(image.max()) - 255.0) < 1e-3
    assert set(label.unique().tolist()) == {0, 1}
    os.remove(os.path.join(isic_root, 'train', 'masks', 'ISIC_0000002_segmentation.png'))
    with pytest.raises(FileNotFoundError, match='ISIC_0000002_segmentation.png.*seg_map_suffix'):
        DATASETS.build(dict(type='ISICDataset', data_root=isic_root,
                            data_prefix=dict(img_path='train/images',
                                             seg_map_path='train/masks')))
    with pytest.raises(FileNotFoundError, match=r'\{train,val\}/\{images,masks\}'):
        DATASETS.build(dict(type='ISICDataset', data_root=isic_root + '/nowhere'))


def test_min_max_normalize_is_upstreams_per_dataset_normalisation():
    """Upstream: (img - mean) / std, then stretched to [0, 255]: the mean and std cancel."""
    from mlla_mm.datasets.isic import MinMaxNormalize
    img = np.random.default_rng(0).integers(0, 256, (7, 5, 3)).astype(np.uint8)
    ours = MinMaxNormalize()(dict(img=img))['img']
    for mean, std in ((157.561, 26.706), (148.429, 25.748)):   # ISIC18 train, ISIC17 val
        x = (img - mean) / std
        upstream = (x - x.min()) / (x.max() - x.min()) * 255.0
        assert np.allclose(ours, upstream, atol=1e-4)


# -- the segmentor and the official files -----------------------------------------------
def _golden_segmentor(entry):
    from mmengine.config import ConfigDict
    from mmseg.registry import MODELS
    return MODELS.build(ConfigDict(
        type='VMUNetSegmentor',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[0.0] * 3, std=[1.0] * 3,
                               bgr_to_rgb=True, size_divisor=32),
        backbone=dict(type='VMUNet', arch=dict(embed_dims=entry['dims'], depths=entry['depths'],
                                                decoder_depths=entry['decoder_depths'],
                                                heads=entry['heads']),
                      sra_threshold=entry['sra_threshold'], kernel_backend='torch'),
        decode_head=dict(type='VMUNetHead', in_channels=entry['dims'][0] // 4, num_classes=2,
                         out_channels=1, threshold=0.5,
                         loss_decode=[dict(type='CrossEntropyLoss', use_sigmoid=True,
                                           loss_name='loss_bce'),
                                      dict(type='BinaryDiceLoss')]),
        test_cfg=dict(mode='whole'))).eval()


def test_segmentor_reads_official_files(golden):
    from mmengine.runner.checkpoint import load_state_dict
    entry = golden['4h']
    model = _golden_segmentor(entry)
    load_state_dict(model, official_state_dict(entry), strict=True)
    model.double()
    case = entry['cases'][0]
    with torch.no_grad():
        logits = model.decode_head(model.backbone(case['input'].double()))
    assert rel_err(logits, case['logits']) < 1e-9
    # and through torch's own load_state_dict, without the aliases
    fresh = _golden_segmentor(entry)
    dedup = {k: v for k, v in official_state_dict(entry).items()
             if 'x_ssproj_W' not in k and 'seq2seq_engine' not in k}
    fresh.load_state_dict(dedup, strict=True)
    assert torch.equal(fresh.decode_head.conv_seg.weight,
                       dedup['vmunet.final_conv.weight'].float())


def test_segmentor_refuses_mismatched_official_files(golden):
    model = _golden_segmentor(golden['4h'])
    three_heads = official_state_dict(golden['3h'])
    with pytest.raises(CheckpointError, match='missing keys.*scanhead_Z'):
        model.load_state_dict(three_heads, strict=False)
    partial = {k: v for k, v in official_state_dict(golden['4h']).items() if 'final_conv' not in k}
    with pytest.raises(CheckpointError, match=r"2 missing keys \['decode_head.conv_seg"):
        model.load_state_dict(partial, strict=False)


def test_segmentor_trains_and_predicts(isic_root):
    from mmengine.dataset import pseudo_collate
    from mmengine.optim import OptimWrapper
    from mmseg.registry import DATASETS
    entry = dict(dims=[8, 16, 32, 64], depths=[1, 1, 1, 1], decoder_depths=[1, 1, 1, 1],
                 heads=4, sra_threshold=0.5)
    model = _golden_segmentor(entry).train()
    dataset = DATASETS.build(dict(
        type='ISICDataset', data_root=isic_root,
        data_prefix=dict(img_path='val/images', seg_map_path='val/masks'),
        pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadBinaryMask'),
                  dict(type='MinMaxNormalize'), dict(type='PackSegInputs')]))
    batch = pseudo_collate([dataset[0], dataset[1]])
    wrapper = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-3))
    losses = model.train_step(batch, wrapper)
    assert {'decode.loss_bce', 'decode.loss_dice', 'decode.acc_seg'} <= set(losses)
    label = torch.stack([s.gt_sem_seg.data for s in batch['data_samples']])
    assert 0 < float(losses['decode.acc_seg']) <= 100
    model.eval()
    with torch.no_grad():
        out = model.test_step(batch)
    assert out[0].pred_sem_seg.data.shape == label.shape[1:] == (1, 56, 72)
    assert set(out[0].pred_sem_seg.data.unique().tolist()) <= {0, 1}
    logits = out[0].seg_logits.data
    assert torch.equal(out[0].pred_sem_seg.data, (logits > 0.5).to(logits))

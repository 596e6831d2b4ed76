"""mlla_mm.deploy.wrappers on stand-in models (no mmseg/mmdet build): what each wrapper calls,
the normalisation it folds in, and the errors for models it cannot wrap. The whole-model
exports are in tests/e2e/test_export.py."""
import pytest
import torch
from torch import nn

from mlla_mm.deploy import DetectorFeatures, SegmentorLogits, export_wrapper


class _Preprocessor(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer('mean', torch.tensor([1.0, 2.0, 3.0]).view(-1, 1, 1))
        self.register_buffer('std', torch.tensor([2.0, 4.0, 8.0]).view(-1, 1, 1))


class _Segmentor(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Conv2d(3, 4, 3, stride=4, padding=1)
        self.decode_head = nn.Conv2d(4, 2, 1)
        self.data_preprocessor = _Preprocessor()
        self.metas = None

    def extract_feat(self, x):
        return [self.backbone(x)]

    def _forward(self, x):
        return self.decode_head(self.extract_feat(x)[0])

    def encode_decode(self, x, metas):
        self.metas = metas
        return nn.functional.interpolate(self._forward(x), size=metas[0]['img_shape'],
                                         mode='bilinear')


class _Detector(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Conv2d(3, 4, 3, padding=1)

    def extract_feat(self, x):
        return [self.backbone(x), self.backbone(x)[..., ::2, ::2]]


def test_segmentor_logits_at_the_input_size_or_the_heads():
    seg = _Segmentor()
    x = torch.randn(2, 3, 20, 28)
    out = SegmentorLogits(seg)(x)
    assert out.shape == (2, 2, 20, 28)
    assert seg.metas == [dict(img_shape=torch.Size([20, 28]))] * 2
    torch.testing.assert_close(SegmentorLogits(seg, resize=False)(x), seg._forward(x))
    # the wrapper's state dict is the model's, prefixed
    assert set(SegmentorLogits(seg).state_dict()) == {f'model.{k}' for k in seg.state_dict()}


def test_normalize_folds_the_preprocessors_mean_and_std():
    seg = _Segmentor()
    x = torch.rand(1, 3, 16, 16) * 255
    normalized = (x - seg.data_preprocessor.mean) / seg.data_preprocessor.std
    torch.testing.assert_close(SegmentorLogits(seg, normalize=True)(x),
                               SegmentorLogits(seg)(normalized))


def test_detector_features_and_export_wrapper_dispatch():
    det, seg = _Detector(), _Segmentor()
    x = torch.randn(1, 3, 8, 8)
    feats = DetectorFeatures(det)(x)
    assert isinstance(feats, tuple) and [f.shape[-1] for f in feats] == [8, 4]
    assert isinstance(export_wrapper(seg), SegmentorLogits)
    assert isinstance(export_wrapper(det), DetectorFeatures)
    assert export_wrapper(seg, backbone_only=True) is seg.backbone
    bare = nn.Conv2d(3, 3, 1)
    assert export_wrapper(bare) is bare


def test_models_without_the_parts_are_named():
    with pytest.raises(TypeError, match='no .decode_head'):
        SegmentorLogits(_Detector())
    with pytest.raises(TypeError, match='no extract_feat'):
        DetectorFeatures(nn.Conv2d(3, 3, 1))
    holder = nn.Module()
    holder.backbone = nn.Conv2d(3, 3, 1)
    with pytest.raises(TypeError, match='backbone_only=True'):
        export_wrapper(holder)

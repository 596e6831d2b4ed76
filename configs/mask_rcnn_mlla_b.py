# Mask R-CNN + FPN, MLLA-B, COCO, 1x; drop_path 0.1. Published: 50.5 box AP / 45.0 mask AP.
# Pretrained: MLLA_B.pth (85.3 top-1; https://cloud.tsinghua.edu.cn/f/91c85c5a1061496d8796/?dl=1).
_base_ = ['./mask_rcnn_mlla_t.py']
model = dict(
    backbone=dict(arch='base', drop_path_rate=0.1,
                  init_cfg=dict(type='Pretrained', checkpoint='checkpoints/MLLA_B.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))

# Mask R-CNN + FPN, MambaOut-Base, COCO, 1x: the recipe of mask_rcnn_mambaout_t.py;
# drop_path 0.6 (the authors' UperNet rate for B, #251; assumed for detection).
# Published: 47.4 box AP / 43.0 mask AP, 100M, 495G (paper Table 2).
# Pretrained: mambaout_base.pth (84.2 top-1) from
# https://github.com/yuweihao/MambaOut/releases/download/model/mambaout_base.pth
_base_ = ['./mask_rcnn_mambaout_t.py']
model = dict(
    backbone=dict(
        arch='base', drop_path_rate=0.6,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/mambaout_base.pth')),
    neck=dict(in_channels=[128, 256, 512, 768]))

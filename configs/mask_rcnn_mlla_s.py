# Mask R-CNN + FPN, MLLA-S, COCO, 1x; drop_path 0.1. Published: 49.2 box AP / 44.2 mask AP.
# Pretrained: MLLA_S.pth (84.4 top-1; https://cloud.tsinghua.edu.cn/f/0e5d0b1409d540aaa80c/?dl=1).
_base_ = ['./mask_rcnn_mlla_t.py']
model = dict(backbone=dict(
    arch='small', drop_path_rate=0.1,
    init_cfg=dict(type='Pretrained', checkpoint='checkpoints/MLLA_S.pth')))

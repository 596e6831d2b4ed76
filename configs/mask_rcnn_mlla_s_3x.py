# Mask R-CNN + FPN, MLLA-S, COCO, 3x; drop_path 0.3. Published: 50.5 box AP / 44.9 mask AP.
_base_ = ['./mask_rcnn_mlla_t_3x.py']
model = dict(backbone=dict(
    arch='small', drop_path_rate=0.3,
    init_cfg=dict(type='Pretrained', checkpoint='checkpoints/MLLA_S.pth')))

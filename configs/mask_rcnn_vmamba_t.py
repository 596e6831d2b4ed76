# Mask R-CNN + FPN, VMamba-T (v2, s1l8), COCO, 1x (12 epochs): the official VMamba recipe
# (detection/configs/vssm1/mask_rcnn_vssm_fpn_coco_tiny.py = mmdet's Swin-T Mask R-CNN 1x):
# single-scale 1333x800, AdamW lr 1e-4, wd 0.05 (none on 'norm' keys), lr steps 8/11,
# batch 16 (8 GPUs x 2), drop_path 0.2.
# Published: 47.3 box AP / 42.7 mask AP.
# Pretrained: VMamba-T ImageNet-1k (82.6 top-1), saved as checkpoints/vssm1_tiny_0230s_ckpt_epoch_264.pth from
# https://github.com/MzeroMiko/VMamba/releases/download/%23v2cls/vssm1_tiny_0230s_ckpt_epoch_264.pth
_base_ = [
    './_base_/models/mask_rcnn_fpn.py',
    './_base_/datasets/coco_instance.py',
    './_base_/schedules/det_1x.py',
    './_base_/det_runtime.py',
]
pretrained = 'checkpoints/vssm1_tiny_0230s_ckpt_epoch_264.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='VMamba',
        arch='tiny',
        drop_path_rate=0.2,
        out_indices=(0, 1, 2, 3),
        with_cp=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))

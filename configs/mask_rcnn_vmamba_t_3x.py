# Mask R-CNN + FPN, VMamba-T (v2, s1l8), COCO, 3x (36 epochs, lr steps 27/33) with the
# DETR-style multi-scale + crop augmentation: the official recipe
# (detection/configs/vssm1/mask_rcnn_vssm_fpn_coco_tiny_ms_3x.py); drop_path 0.2.
# Published: 48.8 box AP / 43.7 mask AP.
# Pretrained: as mask_rcnn_vmamba_t.py (checkpoints/vssm1_tiny_0230s_ckpt_epoch_264.pth).
_base_ = [
    './_base_/models/mask_rcnn_fpn.py',
    './_base_/datasets/coco_instance_ms_crop.py',
    './_base_/schedules/det_3x.py',
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

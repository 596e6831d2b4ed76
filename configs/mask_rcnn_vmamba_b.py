# Mask R-CNN + FPN, VMamba-B (v2, s2l15), COCO, 1x; drop_path 0.6 (official
# mask_rcnn_vssm_fpn_coco_base.py). Published: 49.2 box AP / 44.1 mask AP.
# Pretrained: VMamba-B ImageNet-1k (83.9 top-1), checkpoints/vssm_base_0229_ckpt_epoch_237.pth from
# https://github.com/MzeroMiko/VMamba/releases/download/%23v2cls/vssm_base_0229_ckpt_epoch_237.pth
_base_ = ['./mask_rcnn_vmamba_t.py']
model = dict(
    backbone=dict(
        arch='base', drop_path_rate=0.6,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/vssm_base_0229_ckpt_epoch_237.pth')),
    neck=dict(in_channels=[128, 256, 512, 1024]))

# Mask R-CNN + FPN, VMamba-S (v2, s2l15), COCO, 3x multi-scale + crop; drop_path 0.3
# (official mask_rcnn_vssm_fpn_coco_small_ms_3x.py). Published: 49.9 box AP / 44.2 mask AP.
# Pretrained: as mask_rcnn_vmamba_s.py (checkpoints/vssm_small_0229_ckpt_epoch_222.pth).
_base_ = ['./mask_rcnn_vmamba_t_3x.py']
model = dict(backbone=dict(
    arch='small', drop_path_rate=0.3,
    init_cfg=dict(type='Pretrained', checkpoint='checkpoints/vssm_small_0229_ckpt_epoch_222.pth')))

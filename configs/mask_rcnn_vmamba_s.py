# Mask R-CNN + FPN, VMamba-S (v2, s2l15), COCO, 1x; drop_path 0.3 (official
# mask_rcnn_vssm_fpn_coco_small.py). Published: 48.7 box AP / 43.7 mask AP.
# Pretrained: VMamba-S ImageNet-1k (83.6 top-1), checkpoints/vssm_small_0229_ckpt_epoch_222.pth from
# https://github.com/MzeroMiko/VMamba/releases/download/%23v2cls/vssm_small_0229_ckpt_epoch_222.pth
_base_ = ['./mask_rcnn_vmamba_t.py']
model = dict(backbone=dict(
    arch='small', drop_path_rate=0.3,
    init_cfg=dict(type='Pretrained', checkpoint='checkpoints/vssm_small_0229_ckpt_epoch_222.pth')))

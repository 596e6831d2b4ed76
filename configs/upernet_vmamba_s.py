# UperNet, VMamba-S (v2, s2l15), ADE20K, 160k, 512x512; drop_path 0.3 (official
# upernet_vssm_4xb4-160k_ade20k-512x512_small.py). Published: 50.6 mIoU SS, 51.2 MS.
# Pretrained: checkpoints/vssm_small_0229_ckpt_epoch_222.pth from
# https://github.com/MzeroMiko/VMamba/releases/download/%23v2cls/vssm_small_0229_ckpt_epoch_222.pth
_base_ = ['./upernet_vmamba_t.py']
model = dict(backbone=dict(
    arch='small', drop_path_rate=0.3,
    init_cfg=dict(type='Pretrained', checkpoint='checkpoints/vssm_small_0229_ckpt_epoch_222.pth')))

# UperNet, VMamba-B (v2, s2l15), ADE20K, 160k, 512x512; drop_path 0.6 (official
# upernet_vssm_4xb4-160k_ade20k-512x512_base.py). Published: 51.0 mIoU SS, 51.6 MS.
# Pretrained: checkpoints/vssm_base_0229_ckpt_epoch_237.pth from
# https://github.com/MzeroMiko/VMamba/releases/download/%23v2cls/vssm_base_0229_ckpt_epoch_237.pth
_base_ = ['./upernet_vmamba_t.py']
model = dict(
    backbone=dict(
        arch='base', drop_path_rate=0.6,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/vssm_base_0229_ckpt_epoch_237.pth')),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))

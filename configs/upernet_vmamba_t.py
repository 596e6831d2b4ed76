# UperNet, VMamba-T (v2, s1l8), ADE20K, 160k iterations, 512x512 crops: the official recipe
# (segmentation/configs/vssm1/upernet_vssm_4xb4-160k_ade20k-512x512_tiny.py = mmseg's Swin
# UperNet): AdamW lr 6e-5, wd 0.01 (none on 'norm' keys), 1500-iteration warm-up then
# poly, batch 16, whole-image test at a (2048, 512) resize, drop_path 0.2.
# Published: 47.9 mIoU single-scale, 48.8 multi-scale.
# Pretrained: checkpoints/vssm1_tiny_0230s_ckpt_epoch_264.pth from
# https://github.com/MzeroMiko/VMamba/releases/download/%23v2cls/vssm1_tiny_0230s_ckpt_epoch_264.pth
_base_ = [
    './_base_/models/upernet.py',
    './_base_/datasets/ade20k.py',
    './_base_/schedules/seg_160k.py',
    './_base_/seg_runtime.py',
]
crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        _delete_=True,
        type='VMamba',
        arch='tiny',
        drop_path_rate=0.2,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained',
                      checkpoint='checkpoints/vssm1_tiny_0230s_ckpt_epoch_264.pth')),
    decode_head=dict(in_channels=[96, 192, 384, 768], num_classes=150),
    auxiliary_head=dict(in_channels=384, num_classes=150))

# UperNet, HRVMamba-B, ADE20K, 160k iterations, 512x512 crops: upstream's recipe
# (zhanghao5201/HRVMamba semantic_segmentation/configs/hrvmamba/
# hrvmamba_base_160k_ade20k-512x512_base.py on mmseg's upernet_swin.py, ade20k.py,
# schedule_160k.py): Backbone_HRVMamba = the four branches through the HRFuseScales-style neck
# (128/256/512/2048) with LayerNorm outnorms, SyncBN in the backbone's conv parts, drop_path
# 0.15 (DropPath on all three DVSS branches, as its segmentation code), UperHead channels 512 +
# FCN auxiliary head on level 2 (loss 0.4), AdamW lr 6e-5, betas (0.9, 0.999), wd 0.01 with
# none on 'norm' keys, LinearLR from 1e-5 over 1500 iterations then poly(1.0) to 160k,
# 2 images per GPU, whole-image test at a (2048, 512) resize.
# Assumed: 8 GPUs (README; a comment in the config says 16 x 1) -> batch 16; the published
# model sizes imply DCNv4 without value_proj/output_proj (our default, 99M params with the
# heads; docs/hrvmamba.md) -- a file with them needs arch=dict(preset='base',
# dcn_pointwise=True), which the loader's error names.
# Published: 51.4 mIoU single-scale / 52.2 multi-scale, 99M params, 1184G FLOPs (README).
# Pretrained: HRVMamba-B ImageNet-1k (84.2 top-1), Google Drive
# https://drive.google.com/file/d/1jbXjvCBdjgraeEaJrDjD2wStpxJtCEuy/view?usp=sharing, saved by
# hand as checkpoints/hrvmamba_base_best.pth (tools/download_checkpoints.py says how).
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
        type='HRVMamba',
        arch='base',
        with_neck=True,
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.15,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/hrvmamba_base_best.pth')),
    decode_head=dict(in_channels=[128, 256, 512, 2048], num_classes=150),
    auxiliary_head=dict(in_channels=512, num_classes=150))
optim_wrapper = dict(paramwise_cfg=dict(custom_keys=dict(
    _delete_=True, norm=dict(decay_mult=0.))))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-5, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False)
]

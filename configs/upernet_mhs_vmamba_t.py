# UperNet, MHSVMamba-T (the VMamba-T frame with MHS-VM's Multi-Head Scan mixers, 4 heads,
# Scan Route Attention t = 0.5), ADE20K, 160k iterations, 512 x 512: VMamba-T's recipe
# (mmseg's Swin UperNet: AdamW lr 6e-5, wd 0.01, none on 'norm' keys, 1500-iteration warm-up
# then poly, batch 16, drop_path 0.2), so MHS and SS2D compare in one harness.
# Published: none (MHS-VM reports medical segmentation only). No ImageNet weights exist for
# this backbone: it starts from scratch (init_cfg=None), unlike upernet_vmamba_t.py; a
# VMamba-T file can fill everything but the mixers:
#   --cfg-options model.backbone.init_cfg.type=Pretrained \
#                 model.backbone.init_cfg.checkpoint=checkpoints/vssm1_tiny_0230s_ckpt_epoch_264.pth
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
        type='MHSVMamba',
        arch='tiny',
        sra_threshold=0.5,
        drop_path_rate=0.2,
        out_indices=(0, 1, 2, 3),
        init_cfg=None),
    decode_head=dict(in_channels=[96, 192, 384, 768], num_classes=150),
    auxiliary_head=dict(in_channels=384, num_classes=150))

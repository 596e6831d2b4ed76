# UperNet, MambaOut-Tiny, ADE20K, 160k iterations, 512x512 crops: the MambaOut paper's
# recipe (arXiv 2405.07992, Sec. 4.4): UperNet initialised from the ImageNet weights,
# AdamW lr 1e-4, batch 16, 160k iterations, mmsegmentation; the author's additions
# (yuweihao/MambaOut#251): built on the Swin config, LN on each backbone output, lr 1e-4
# for every size, drop_path T 0.3 / S 0.3 or 0.4 / B 0.6, no layer-wise lr decay.
# From mmseg's Swin UperNet config (assumed, not stated): wd 0.01 with none on 'norm'
# keys, 1500-iteration linear warm-up (ratio 1e-6) then poly(1.0) to 0, the standard
# ADE20K pipeline (resize (2048, 512) x 0.5-2.0, crop 512, flip, photometric distortion),
# whole-image test at a (2048, 512) resize, auxiliary FCN head on stage 3 (weight 0.4).
# Deliberate: batch 16 as 8 GPUs x 2 (paper: 4 GPUs, same total); fp32 OptimWrapper
# (paper: FP16; pass --amp on GPUs to match), as for the other models.
# Published: 47.4 mIoU single-scale / 48.6 multi-scale, 54M, 938G (512x2048) (paper Table 3).
# Pretrained: checkpoints/mambaout_tiny.pth from
# https://github.com/yuweihao/MambaOut/releases/download/model/mambaout_tiny.pth
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
        type='MambaOut',
        arch='tiny',
        drop_path_rate=0.3,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/mambaout_tiny.pth')),
    decode_head=dict(in_channels=[96, 192, 384, 576], num_classes=150),
    auxiliary_head=dict(in_channels=384, num_classes=150))
optim_wrapper = dict(optimizer=dict(lr=0.0001))

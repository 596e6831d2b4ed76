# UperNet, MLLA-B, ADE20K, 160k iterations, 512x512 crops; the MLLA paper's recipe
# (AdamW lr 6e-5, wd 0.01, poly with 1500 warm-up iterations, batch 16, drop_path 0.5).
# Published: 51.9 mIoU single-scale, 52.5 multi-scale.
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
        type='MLLA',
        arch='base',
        drop_path_rate=0.5,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/MLLA_B.pth')),
    decode_head=dict(in_channels=[96, 192, 384, 768], num_classes=150),
    auxiliary_head=dict(in_channels=384, num_classes=150))

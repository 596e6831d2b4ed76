# UperNet, MLLA-T, ADE20K, 160k, 512x512. The MLLA paper publishes no T/S segmentation
# result; this applies its B recipe with the T backbone (drop_path 0.2, the ImageNet value).
_base_ = ['./upernet_mlla_b.py']
model = dict(
    backbone=dict(arch='tiny', drop_path_rate=0.2,
                  init_cfg=dict(type='Pretrained', checkpoint='checkpoints/MLLA_T.pth')),
    decode_head=dict(in_channels=[64, 128, 256, 512]),
    auxiliary_head=dict(in_channels=256))

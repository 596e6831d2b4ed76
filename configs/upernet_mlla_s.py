# UperNet, MLLA-S, ADE20K, 160k, 512x512 (B recipe with the S backbone, drop_path 0.3;
# no published S segmentation result).
_base_ = ['./upernet_mlla_b.py']
model = dict(
    backbone=dict(arch='small', drop_path_rate=0.3,
                  init_cfg=dict(type='Pretrained', checkpoint='checkpoints/MLLA_S.pth')),
    decode_head=dict(in_channels=[64, 128, 256, 512]),
    auxiliary_head=dict(in_channels=256))

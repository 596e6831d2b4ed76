# UperNet, MambaOut-Base, ADE20K, 160k, 512x512: the recipe of upernet_mambaout_t.py;
# drop_path 0.6 (#251). Published: 49.6 mIoU SS / 51.0 MS, 112M, 1178G (paper Table 3).
# Pretrained: checkpoints/mambaout_base.pth from
# https://github.com/yuweihao/MambaOut/releases/download/model/mambaout_base.pth
_base_ = ['./upernet_mambaout_t.py']
model = dict(
    backbone=dict(
        arch='base', drop_path_rate=0.6,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/mambaout_base.pth')),
    decode_head=dict(in_channels=[128, 256, 512, 768]),
    auxiliary_head=dict(in_channels=512))

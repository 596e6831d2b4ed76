# UperNet, MambaOut-Small, ADE20K, 160k, 512x512: the recipe of upernet_mambaout_t.py;
# drop_path 0.4 (the author gives 0.3 or 0.4, #251; 0.4 is also its ImageNet rate).
# Published: 49.5 mIoU SS / 50.6 MS, 76M, 1032G (paper Table 3).
# Pretrained: checkpoints/mambaout_small.pth from
# https://github.com/yuweihao/MambaOut/releases/download/model/mambaout_small.pth
_base_ = ['./upernet_mambaout_t.py']
model = dict(backbone=dict(
    arch='small', drop_path_rate=0.4,
    init_cfg=dict(type='Pretrained', checkpoint='checkpoints/mambaout_small.pth')))

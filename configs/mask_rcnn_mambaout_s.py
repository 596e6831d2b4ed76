# Mask R-CNN + FPN, MambaOut-Small, COCO, 1x: the recipe of mask_rcnn_mambaout_t.py;
# drop_path 0.4 (assumed: the authors give 0.3 or 0.4 for S in UperNet, #251; 0.4 is also
# its ImageNet rate). Published: 47.4 box AP / 42.7 mask AP, 65M, 354G (paper Table 2).
# Pretrained: mambaout_small.pth (84.1 top-1) from
# https://github.com/yuweihao/MambaOut/releases/download/model/mambaout_small.pth
_base_ = ['./mask_rcnn_mambaout_t.py']
model = dict(backbone=dict(
    arch='small', drop_path_rate=0.4,
    init_cfg=dict(type='Pretrained', checkpoint='checkpoints/mambaout_small.pth')))

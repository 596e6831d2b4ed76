# Mask R-CNN + FPN, MLLA-T, COCO, 1x (12 epochs), the official recipe
# (LeapLabTHU/MLLA downstream/detection/configs/mlla/mlla_t_mrcnn_1x.py, mmdet 2.x):
# AdamW lr 1e-4, wd 0.05 (none on norms), batch 16 (8 GPUs x 2), multi-scale + crop
# augmentation (the official 1x configs use it too), drop_path 0.1, lr steps 8/11 and
# mmdet 2.x's schedule_1x warm-up: linear over 500 iterations from 0.001 (not the
# 1000 of mmdet 3.x's Swin config that _base_/schedules/det_1x.py follows).
# mmdet 2.x -> 3.x translation: AutoAugment -> RandomChoice, Resize(multiscale_mode=
# 'value') -> RandomChoiceResize, Normalize/Pad(32) -> DetDataPreprocessor.
# Published: 46.8 box AP / 42.1 mask AP.
# Pretrained: MLLA_T.pth (ImageNet-1k, 83.5 top-1) from the MLLA README
# (https://cloud.tsinghua.edu.cn/f/7a19712877cb4242889c/?dl=1), saved as checkpoints/MLLA_T.pth.
_base_ = [
    './_base_/models/mask_rcnn_fpn.py',
    './_base_/datasets/coco_instance_ms_crop.py',
    './_base_/schedules/det_1x.py',
    './_base_/det_runtime.py',
]
pretrained = 'checkpoints/MLLA_T.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='MLLA',
        arch='tiny',
        drop_path_rate=0.1,
        out_indices=(0, 1, 2, 3),
        with_cp=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[64, 128, 256, 512]))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1)
]

# Mask R-CNN + FPN, MLLA-T, COCO, 1x (12 epochs), the MLLA paper's recipe:
# AdamW lr 1e-4, wd 0.05 (none on norms), batch 16 (8 GPUs x 2), multi-scale + crop
# augmentation (the official 1x configs use it too), drop_path 0.1.
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

# Mask R-CNN + FPN, HRVMamba-S, COCO, 1x (12 epochs). Upstream has no detection config and
# publishes no detection number: this is our recipe. The four branches (32/64/128/256
# channels at 1/4-1/32) go into FPN, each through its LayerNorm outnorm.
# Assumed, as the other backbones of this repository (mmdet's Swin-T Mask R-CNN 1x):
# single-scale 1333x800 with flip, AdamW lr 1e-4, wd 0.05 with none on 'norm' keys,
# 1000-iteration linear warm-up, lr steps at epochs 8 and 11, batch 16 (8 GPUs x 2);
# drop_path 0.1 (upstream's pose HRVMamba-S 256x192); SyncBN in the backbone's conv parts and
# DropPath on all three DVSS branches (as upstream's segmentation recipe).
# Published: none. Pretrained: HRVMamba-S ImageNet-1k (81.3 top-1), Google Drive
# https://drive.google.com/file/d/1Gxo0Pxg2D7x3dU0P2AZ2YGEFS-7XMxIX/view?usp=sharing, saved by
# hand as checkpoints/hrvmamba_small_best.pth (tools/download_checkpoints.py says how).
_base_ = [
    './_base_/models/mask_rcnn_fpn.py',
    './_base_/datasets/coco_instance.py',
    './_base_/schedules/det_1x.py',
    './_base_/det_runtime.py',
]
pretrained = 'checkpoints/hrvmamba_small_best.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='HRVMamba',
        arch='small',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        with_cp=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[32, 64, 128, 256]))

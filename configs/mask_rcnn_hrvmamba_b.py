# Mask R-CNN + FPN, HRVMamba-B, COCO, 1x (12 epochs). Upstream has no detection config and
# publishes no detection number: this is our recipe, as mask_rcnn_hrvmamba_s.py (see there)
# with the Base branches (80/160/320/640 channels) and drop_path 0.2 (upstream's pose
# HRVMamba-B 256x192).
# Published: none. Pretrained: HRVMamba-B ImageNet-1k (84.2 top-1), Google Drive
# https://drive.google.com/file/d/1jbXjvCBdjgraeEaJrDjD2wStpxJtCEuy/view?usp=sharing, saved by
# hand as checkpoints/hrvmamba_base_best.pth (tools/download_checkpoints.py says how).
_base_ = ['./mask_rcnn_hrvmamba_s.py']
model = dict(
    backbone=dict(
        arch='base', drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/hrvmamba_base_best.pth')),
    neck=dict(in_channels=[80, 160, 320, 640]))

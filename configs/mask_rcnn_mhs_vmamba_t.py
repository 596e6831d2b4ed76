# Mask R-CNN + FPN, MHSVMamba-T (the VMamba-T frame with MHS-VM's Multi-Head Scan mixers, 4
# heads, Scan Route Attention t = 0.5), COCO, 1x: VMamba-T's recipe (mmdet's Swin-T Mask
# R-CNN 1x: single-scale 1333x800, AdamW lr 1e-4, wd 0.05, none on 'norm' keys, steps 8/11,
# batch 16, drop_path 0.2), so MHS and SS2D compare in one harness.
# Published: none (MHS-VM reports medical segmentation only). No ImageNet weights exist for
# this backbone: it starts from scratch (init_cfg=None), unlike mask_rcnn_vmamba_t.py; a
# VMamba-T file can fill everything but the mixers (see upernet_mhs_vmamba_t.py).
_base_ = [
    './_base_/models/mask_rcnn_fpn.py',
    './_base_/datasets/coco_instance.py',
    './_base_/schedules/det_1x.py',
    './_base_/det_runtime.py',
]
model = dict(
    backbone=dict(
        _delete_=True,
        type='MHSVMamba',
        arch='tiny',
        sra_threshold=0.5,
        drop_path_rate=0.2,
        out_indices=(0, 1, 2, 3),
        with_cp=False,
        init_cfg=None),
    neck=dict(in_channels=[96, 192, 384, 768]))

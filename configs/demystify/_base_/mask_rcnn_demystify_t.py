# Mask R-CNN + FPN (mmdet 3.x), COCO 1x, with the ablation backbone of "Demystify Mamba in
# Vision" (Han et al., NeurIPS 2024): DemystifyNet-T, Swin-T's macro architecture with global
# linear attention and the row's design. The paper's dense recipe (= Swin-T's / MLLA's 1x):
# multi-scale + crop augmentation, AdamW lr 1e-4, wd 0.05 (none on norms, APE, A_log, D),
# 12 epochs with steps at 8 and 11, batch 16 (8 GPUs x 2), drop_path 0.2 (Swin-T).
# Each row's config sets model.backbone.design and the ImageNet checkpoint it starts from.
_base_ = [
    '../../_base_/models/mask_rcnn_fpn.py',
    '../../_base_/datasets/coco_instance_ms_crop.py',
    '../../_base_/schedules/det_1x.py',
    '../../_base_/det_runtime.py',
]
model = dict(
    backbone=dict(
        _delete_=True,
        type='DemystifyNet',
        arch='tiny',
        design='linear_attention',
        drop_path_rate=0.2,
        out_indices=(0, 1, 2, 3),
        with_cp=False,
        kernel_backend='auto'),
    neck=dict(in_channels=[96, 192, 384, 768]))
# Mamba keeps weight decay off A_log and D (its _no_weight_decay); so do we.
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={
    '.A_log': dict(decay_mult=0.),
    'attn.D': dict(decay_mult=0.)
}))

# UperNet (mmseg 1.x), ADE20K, 160k iterations, 512x512 crops, with the ablation backbone of
# "Demystify Mamba in Vision" (Han et al., NeurIPS 2024): DemystifyNet-T, Swin-T's macro
# architecture with global linear attention and the row's design. The paper's dense recipe
# (= Swin's / MLLA's UperNet): AdamW lr 6e-5, wd 0.01 (none on norms, APE, A_log, D), poly with
# 1500 warm-up iterations, batch 16 (8 GPUs x 2), drop_path 0.3 (Swin-T's UperNet value).
# Each row's config sets model.backbone.design and the ImageNet checkpoint it starts from.
_base_ = [
    '../../_base_/models/upernet.py',
    '../../_base_/datasets/ade20k.py',
    '../../_base_/schedules/seg_160k.py',
    '../../_base_/seg_runtime.py',
]
crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        _delete_=True,
        type='DemystifyNet',
        arch='tiny',
        design='linear_attention',
        drop_path_rate=0.3,
        out_indices=(0, 1, 2, 3),
        with_cp=False,
        kernel_backend='auto'),
    decode_head=dict(in_channels=[96, 192, 384, 768], num_classes=150),
    auxiliary_head=dict(in_channels=384, num_classes=150))
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={
    '.A_log': dict(decay_mult=0.),
    'attn.D': dict(decay_mult=0.)
}))

# ImageNet-1k classification (mmpretrain 1.x) with the ablation backbone of "Demystify Mamba in
# Vision" (Han et al., NeurIPS 2024), on mmpretrain's own Swin-T recipe -- the paper trains its
# ablation models "under the same settings as Swin Transformer": 300 epochs, AdamW (lr 1e-3 at
# batch 1024 = 16 GPUs x 64, wd 0.05, none on norms/biases/APE/A_log/D), cosine with 20 warm-up
# epochs, RandAugment, Mixup 0.8 / CutMix 1.0, random erasing, label smoothing 0.1,
# drop_path 0.2. The paper states batch 4096 with lr 4e-3: the same lr per image
# (--auto-scale-lr scales it to the batch you run).
# Each row's config sets model.backbone.design.
_base_ = ['mmpretrain::swin_transformer/swin-tiny_16xb64_in1k.py']
custom_imports = dict(imports=['mlla_mm'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='DemystifyNet',
        arch='tiny',
        design='linear_attention',
        drop_path_rate=0.2,
        out_indices=(3, ),
        kernel_backend='auto'),
    head=dict(in_channels=768))
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={
    '.A_log': dict(decay_mult=0.),
    'attn.D': dict(decay_mult=0.)
}))

# Top-down HRVMamba-T on COCO person keypoints, 256x192: HRVMamba's recipe, read from
# zhanghao5201/HRVMamba 7222bc4 pose_estimation/configs/cocofinal/
# td-hm_hrvmamba_tiny_8xb32-210e_coco-256x192.py. Upstream's, field by field: the backbone
# (Tiny: C0..C3 16/32/64/128, stage-1 width 32; drop path / SSM dropout / MLP dropout
# 0 / 0 / 0; SyncBN), HeatmapHead on C0 = 16 channels without deconvolution,
# MSRAHeatmap 256x192 -> 64x48 sigma 2, flip test (heatmap mode, shifted), the COCO
# pipelines and person detections, AdamW lr 5e-4 wd 0.01, 500-iteration warm-up,
# MultiStepLR [170, 200] of 210 epochs, auto_scale_lr base 256, batch 128 per GPU on
# 8 GPUs (the file name's "8xb32" notwithstanding), validation every 2 epochs, a
# checkpoint every epoch keeping the best AP.
# Deliberate: upstream's `fp16 = dict(loss_scale='dynamic')` is an mmcv 1.x key that
# mmengine never reads (upstream trained in fp32), so it is left out; --amp trains in
# mixed precision.
# Published: 69.5 AP on COCO val2017 with those detections, 2M params, 1.1 GFLOPs
# (upstream README; not reproduced here).
# Pretrained: upstream's config starts from `hrvmamba_tinynew_best.pth`, an ImageNet-1k
# HRVMamba-T of this (plain) layout that upstream has not published: its README's ImageNet
# Tiny is an HRVmamba_se_lpu model, which this backbone does not build. Put such a file at
# checkpoints/hrvmamba_tinynew_best.pth, or train from scratch with
# --cfg-options model.backbone.init_cfg=None (the COCO result then will not be upstream's).
_base_ = [
    './_base_/models/td_hm_hrvmamba.py',
    './_base_/datasets/coco_keypoints.py',
    './_base_/schedules/pose_210e.py',
    './_base_/pose_runtime.py',
]
pretrained = 'checkpoints/hrvmamba_tinynew_best.pth'
model = dict(
    backbone=dict(
        arch='tiny',
        drop_path_rate=0.0,
        ssm_drop_rate=0.0,
        mlp_drop_rate=0.0,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    head=dict(in_channels=16, decoder={{_base_.codec}}))
train_dataloader = dict(batch_size=128)
val_dataloader = dict(batch_size=128)
test_dataloader = val_dataloader

# Top-down HRVMamba-B on COCO person keypoints, 256x192: HRVMamba's recipe, read from
# zhanghao5201/HRVMamba 7222bc4 pose_estimation/configs/cocofinal/
# td-hm_hrvmamba_base_8xb32-210e_coco-256x192.py. Upstream's, field by field: the backbone
# (Base: C0..C3 80/160/320/640, stage-1 width 64; drop path / SSM dropout / MLP dropout
# 0.2 / 0 / 0; SyncBN), HeatmapHead on C0 = 80 channels without deconvolution,
# MSRAHeatmap 256x192 -> 64x48 sigma 2, flip test (heatmap mode, shifted), the COCO
# pipelines and person detections, AdamW lr 5e-4 wd 0.01, 500-iteration warm-up,
# MultiStepLR [170, 200] of 210 epochs, auto_scale_lr base 256, batch 64 per GPU on
# 8 GPUs, validation every 2 epochs, a checkpoint every epoch keeping the best AP.
# Deliberate: upstream's `fp16 = dict(loss_scale='dynamic')` is an mmcv 1.x key that
# mmengine never reads (upstream trained in fp32), so it is left out; --amp trains in
# mixed precision.
# Published: 76.5 AP on COCO val2017 with those detections, 47M params, 14.2 GFLOPs
# (upstream README; not reproduced here).
# Pretrained: upstream's ImageNet-1k HRVMamba-B `hrvmamba_base_best.pth` (84.2 top-1;
# Google Drive, see tools/download_checkpoints.py), saved as
# checkpoints/hrvmamba_base_best.pth.
_base_ = [
    './_base_/models/td_hm_hrvmamba.py',
    './_base_/datasets/coco_keypoints.py',
    './_base_/schedules/pose_210e.py',
    './_base_/pose_runtime.py',
]
pretrained = 'checkpoints/hrvmamba_base_best.pth'
model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.2,
        ssm_drop_rate=0.0,
        mlp_drop_rate=0.0,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    head=dict(in_channels=80, decoder={{_base_.codec}}))

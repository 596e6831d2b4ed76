# Top-down HRVMamba-B on COCO person keypoints, 384x288: HRVMamba's recipe, read from
# zhanghao5201/HRVMamba 7222bc4 pose_estimation/configs/cocofinal/
# td-hm_hrvmamba_base_8xb32-210e_coco-384x288.py. It differs from the 256x192 one
# (td-hm_hrvmamba_b_coco-256x192.py, whose header lists the shared fields) in: the input,
# MSRAHeatmap 384x288 -> 96x72 with sigma 3; stronger regularisation, drop path / SSM
# dropout / MLP dropout 0.6 / 0.2 / 0.2; batch 32 per GPU on 8 GPUs; validation every
# epoch. All upstream's.
# Published: 77.7 AP on COCO val2017, 47M params, 32.0 GFLOPs (upstream README; not
# reproduced here). Pretrained: checkpoints/hrvmamba_base_best.pth (ImageNet-1k).
_base_ = ['./td-hm_hrvmamba_b_coco-256x192.py']
codec = dict(type='MSRAHeatmap', input_size=(288, 384), heatmap_size=(72, 96), sigma=3)
model = dict(
    backbone=dict(drop_path_rate=0.6, ssm_drop_rate=0.2, mlp_drop_rate=0.2),
    head=dict(decoder=codec))
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='RandomHalfBody'),
    dict(type='RandomBBoxTransform'),
    dict(type='TopdownAffine', input_size=codec['input_size']),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs')
]
val_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='TopdownAffine', input_size=codec['input_size']),
    dict(type='PackPoseInputs')
]
train_cfg = dict(val_interval=1)
train_dataloader = dict(batch_size=32, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=32, dataset=dict(pipeline=val_pipeline))
test_dataloader = val_dataloader

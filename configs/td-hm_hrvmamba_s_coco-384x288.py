# Top-down HRVMamba-S on COCO person keypoints, 384x288: HRVMamba's recipe, read from
# zhanghao5201/HRVMamba 7222bc4 pose_estimation/configs/cocofinal/
# td-hm_hrvmamba_small_8xb32-210e_coco-384x288.py. It differs from the 256x192 one
# (td-hm_hrvmamba_s_coco-256x192.py, whose header lists the shared fields) only in the
# input: MSRAHeatmap 384x288 -> 96x72 with sigma 3. Everything else is upstream's as
# there, batch 64 per GPU included (upstream's file sets 64, as its 256x192 one; the
# file name says "8xb32").
# Published: 76.4 AP on COCO val2017, 8M params, 7.4 GFLOPs (upstream README; not
# reproduced here). Pretrained: checkpoints/hrvmamba_small_best.pth (ImageNet-1k).
_base_ = ['./td-hm_hrvmamba_s_coco-256x192.py']
codec = dict(type='MSRAHeatmap', input_size=(288, 384), heatmap_size=(72, 96), sigma=3)
model = dict(head=dict(decoder=codec))
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
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = val_dataloader

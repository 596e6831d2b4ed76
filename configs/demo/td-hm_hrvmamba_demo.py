# CPU demo: top-down pose estimation with a small HRVMamba, from scratch, on the generated
# COCO-keypoints data (python tools/demo.py --task pose). The model is upstream's pose
# layout (HeatmapHead on branch 0, flip test) with a shallow backbone: Tiny's widths
# (16/32/64/128) and one DVSS block per branch in one module per stage (9 blocks instead
# of 44), a 16-wide stage 1 of one Bottleneck; 128x96 crops.
_base_ = [
    '../_base_/models/td_hm_hrvmamba.py',
    './_base_/demo_coco_pose.py',
    '../_base_/pose_runtime.py',
]
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, stage1_channels=16, channels=[16, 32, 64, 128],
                  num_modules=(1, 1, 1), num_blocks=1, stage1_blocks=1),
        drop_path_rate=0.0,
        norm_cfg=norm_cfg),
    head=dict(in_channels=16, decoder={{_base_.codec}}))

# batch 8 (configs/demo/_base_/demo_coco_pose.py): more updates per sample seen learned
# faster than 16 or 32 in this short schedule
max_epochs = 10
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1.5e-3, betas=(0.9, 0.999), weight_decay=0.01),
    clip_grad=dict(max_norm=10.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True,
         milestones=[max_epochs - 2], gamma=0.1)
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2, save_best=None))
log_processor = dict(window_size=5)

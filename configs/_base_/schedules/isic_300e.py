# MHS-VM / VM-UNet's ISIC schedule (configs/config_setting.py): 300 epochs, AdamW lr 1e-3,
# betas (0.9, 0.999), eps 1e-8, wd 1e-2 on every parameter; CosineAnnealingLR T_max 50,
# eta_min 1e-5, stepped per epoch (so the lr swings with a 100-epoch period); validation
# every epoch from epoch 101. Upstream keeps the epoch of lowest validation loss; mmseg's
# validation computes no loss, so the best checkpoint here is the one of highest IoU.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=50, eta_min=1e-5, by_epoch=True, begin=0, end=300)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=300, val_begin=101, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=20),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=True, interval=20, max_keep_ckpts=2,
                    save_best='IoU', rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
randomness = dict(seed=42)

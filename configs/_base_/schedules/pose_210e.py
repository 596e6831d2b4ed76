# mmpose's top-down heatmap schedule, as in its HRFormer COCO configs and HRVMamba's:
# 210 epochs, AdamW lr 5e-4 (betas 0.9/0.999) wd 0.01, 500-iteration linear warm-up from
# 0.001 x lr, lr x 0.1 after epochs 170 and 200. The lr is for a total batch of 256
# (auto_scale_lr; pass --auto-scale-lr to scale it to the actual one).
max_epochs = 210
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=2)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-4, betas=(0.9, 0.999), weight_decay=0.01),
    # kept from the HRFormer recipe HRVMamba copied; HRVMamba has no such parameter
    paramwise_cfg=dict(custom_keys={'relative_position_bias_table': dict(decay_mult=0.)}))
param_scheduler = [
    dict(type='LinearLR', begin=0, end=500, start_factor=0.001, by_epoch=False),  # warm-up
    dict(type='MultiStepLR', begin=0, end=max_epochs, milestones=[170, 200], gamma=0.1,
         by_epoch=True)
]
auto_scale_lr = dict(enable=False, base_batch_size=256)

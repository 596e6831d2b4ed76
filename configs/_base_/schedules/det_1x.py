# 12 epochs, lr steps at 8 and 11, 1000-iteration linear warm-up (mmdet 3.x's Swin config;
# MLLA's mmdet 2.x configs warm up for 500, set in mask_rcnn_mlla_t.py); AdamW as the
# Swin/MLLA/VMamba detection recipes (lr 1e-4, wd 0.05, no decay on norms).
# Batch 16 = 8 GPUs x 2 images.
max_epochs = 12
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[8, 11],
         gamma=0.1)
]
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.0001, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={
        'absolute_pos_embed': dict(decay_mult=0.),
        'relative_position_bias_table': dict(decay_mult=0.),
        'norm': dict(decay_mult=0.)
    }))
auto_scale_lr = dict(enable=False, base_batch_size=16)

# ISIC 2017 / 2018 in the VM-UNet / MHS-VM layout: <data_root>/{train,val}/{images,masks}
# (ISIC names: X.jpg with X_segmentation.png). Upstream's transforms: per-image min-max
# stretch to [0, 255] (its per-dataset mean/std cancel in it), random horizontal flip,
# vertical flip and rotation (each p 0.5), resize to 256 x 256; test: stretch and resize.
# Metrics are computed on the masks at their original size (mmseg's convention; upstream
# resizes the masks to 256 x 256 first).
dataset_type = 'ISICDataset'
data_root = 'data/isic2018'
img_scale = (256, 256)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadBinaryMask', threshold=0.5),
    dict(type='MinMaxNormalize'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomFlip', prob=0.5, direction='vertical'),
    dict(type='RandomRotate', prob=0.5, degree=(0, 360), pad_val=0, seg_pad_val=0),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='MinMaxNormalize'),
    dict(type='Resize', scale=img_scale, keep_ratio=False),
    dict(type='LoadBinaryMask', threshold=0.5),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=32,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='train/images', seg_map_path='train/masks'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='val/images', seg_map_path='val/masks'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='BinarySegMetric')
test_evaluator = val_evaluator

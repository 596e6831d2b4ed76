# The generated semantic dataset (tools/dataset_converters/generate_demo_data.py):
# ADE20K layout at data/demo_ade20k, 8 classes named after ADE20K classes.
dataset_type = 'ADE20KDataset'
data_root = 'data/demo_ade20k'
# = mlla_mm.datasets.DEMO_SEG_CLASSES / DEMO_SEG_PALETTE (checked by tests/test_configs.py)
classes = ('sky', 'floor', 'grass', 'fence', 'ball', 'box', 'tent', 'flower')
palette = [[6, 230, 230], [80, 50, 50], [4, 250, 7], [255, 184, 6], [255, 0, 163],
           [0, 61, 255], [255, 0, 0], [255, 255, 0]]
metainfo = dict(classes=classes, palette=palette)
crop_size = (256, 256)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(320, 256), ratio_range=(0.75, 1.25), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(320, 256), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=4,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

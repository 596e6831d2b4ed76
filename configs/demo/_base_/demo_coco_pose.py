# The generated person-keypoints dataset (tools/dataset_converters/generate_demo_data.py
# --kind pose): real COCO person-keypoints layout at data/demo_coco_pose, posed figures on
# textured backgrounds, 320x256 images. Top-down at a small input for CPU speed: person
# crops at 128x96 (width 96), 32x24 heatmaps; the ground-truth person boxes are used for
# testing. To test on the generated (simulated) person detections instead, add
# bbox_file=data_root + 'person_detection_results/demo_val2017_detections_person.json'
# to val_dataloader.dataset.
dataset_type = 'CocoDataset'
data_mode = 'topdown'
data_root = 'data/demo_coco_pose/'
codec = dict(type='MSRAHeatmap', input_size=(96, 128), heatmap_size=(24, 32), sigma=2)

# milder augmentation than COCO's (no half-body crops; box scale 0.75-1.25 instead of
# 0.5-1.5, rotation up to 30 instead of 80 degrees): a few epochs on CPU learn more
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='RandomBBoxTransform', scale_factor=(0.75, 1.25), rotate_factor=30),
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
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_mode=data_mode,
        ann_file='annotations/person_keypoints_train2017.json',
        data_prefix=dict(img='train2017/'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32,
    num_workers=1,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_mode=data_mode,
        ann_file='annotations/person_keypoints_val2017.json',
        data_prefix=dict(img='val2017/'),
        test_mode=True,
        pipeline=val_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='CocoMetric',
                     ann_file=data_root + 'annotations/person_keypoints_val2017.json')
test_evaluator = val_evaluator

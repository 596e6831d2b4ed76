# Cascade Mask R-CNN, Vim-Ti, COCO, ViTDet-style: the setting of the Vim paper's detection
# results (det/projects/ViTDet/configs/COCO/cascade_mask_rcnn_vimdet_t_100ep_adj1.py):
# large-scale jitter at 1024x1024 (scale 0.1-2.0), 100 epochs = 184,375 iterations at 64
# images per iteration, lr steps at 163,889 and 177,546, 250 warm-up iterations, AdamW
# lr 1e-4, wd 0.1, layer-wise lr decay 0.837, drop_path 0.1, AMP.
# Deliberate: upstream (detectron2's get_default_optimizer_params, weight_decay_norm=0,
# pos_embed override) exempts only norms and pos_embed from weight decay; our
# LayerDecayOptimWrapperConstructor also exempts biases and D (every 1-D tensor, as Vim's
# timm-based ImageNet training does) and A_log (mamba_ssm marks it _no_weight_decay). Upstream
# evaluates and checkpoints every 5000 iterations; we do every 20000 (logistics only).
# Backbone: the residual stream after the last block (upstream's last_layer_process='add')
# fed to every branch of the simple pyramid (ViTDet).
# Heads: 2-conv RPN, three 4conv1fc class-agnostic box heads (IoU 0.5/0.6/0.7), 4-conv mask
# head. ViTDet normalises the pyramid and the head convs with LayerNorm; mmcv's LN is not a
# channel norm for NCHW maps, so GroupNorm(32) is used there instead (the closest mmdet
# supports), and mmdet's FPN (lateral + top-down + 3x3, max-pool P6) stands in for ViTDet's
# per-scale 1x1/3x3 convs. Upstream used RoPE and an older unreleased checkpoint; the
# published midclstok checkpoint has no RoPE, so none is used.
# Pretrained: https://huggingface.co/hustvl/Vim-tiny-midclstok (76.1 top-1),
# saved as checkpoints/vim_t_midclstok_76p1acc.pth.
_base_ = [
    './_base_/models/mask_rcnn_fpn.py',
    './_base_/datasets/coco_instance.py',
    './_base_/det_runtime.py',
]
embed_dims = 192
image_size = (1024, 1024)
norm_cfg = dict(type='GN', num_groups=32, requires_grad=True)
max_iters = 184375

model = dict(
    type='CascadeRCNN',
    data_preprocessor=dict(
        batch_augments=[dict(type='BatchFixedSizePad', size=image_size, pad_mask=True)]),
    backbone=dict(
        _delete_=True,
        type='Vim',
        arch='tiny',
        out_indices=(23,),
        feature_type='residual',
        drop_path_rate=0.1,
        pretrained_cls_token_position='middle',
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/vim_t_midclstok_76p1acc.pth')),
    neck=dict(in_channels=[embed_dims] * 4, norm_cfg=norm_cfg),
    rpn_head=dict(num_convs=2),
    roi_head=dict(
        _delete_=True,
        type='CascadeRoIHead',
        num_stages=3,
        stage_loss_weights=[1, 0.5, 0.25],
        bbox_roi_extractor=dict(
            type='SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
            out_channels=256,
            featmap_strides=[4, 8, 16, 32]),
        bbox_head=[
            dict(
                type='Shared4Conv1FCBBoxHead',
                in_channels=256,
                conv_out_channels=256,
                fc_out_channels=1024,
                roi_feat_size=7,
                num_classes=80,
                norm_cfg=norm_cfg,
                bbox_coder=dict(
                    type='DeltaXYWHBBoxCoder',
                    target_means=[0., 0., 0., 0.],
                    target_stds=stds),
                reg_class_agnostic=True,
                loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
                loss_bbox=dict(type='L1Loss', loss_weight=1.0))
            for stds in ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1],
                         [0.033, 0.033, 0.067, 0.067])
        ],
        mask_roi_extractor=dict(
            type='SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=14, sampling_ratio=0),
            out_channels=256,
            featmap_strides=[4, 8, 16, 32]),
        mask_head=dict(
            type='FCNMaskHead',
            num_convs=4,
            in_channels=256,
            conv_out_channels=256,
            num_classes=80,
            norm_cfg=norm_cfg,
            loss_mask=dict(type='CrossEntropyLoss', use_mask=True, loss_weight=1.0))),
    train_cfg=dict(
        rcnn=[
            dict(
                assigner=dict(
                    type='MaxIoUAssigner',
                    pos_iou_thr=iou,
                    neg_iou_thr=iou,
                    min_pos_iou=iou,
                    match_low_quality=False,
                    ignore_iof_thr=-1),
                sampler=dict(
                    type='RandomSampler',
                    num=512,
                    pos_fraction=0.25,
                    neg_pos_ub=-1,
                    add_gt_as_proposals=True),
                mask_size=28,
                pos_weight=-1,
                debug=False) for iou in (0.5, 0.6, 0.7)
        ]))

backend_args = None
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.1, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_type='absolute_range', crop_size=image_size,
         recompute_bbox=True, allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    # longer side 1024; padded to a multiple of 32 (not to a 1024 square as ViTDet: the
    # position embedding follows any grid)
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    batch_size=4,   # x 16 GPUs = 64 images per iteration
    num_workers=4,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=None,
    dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=20000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=250),
    dict(type='MultiStepLR', begin=0, end=max_iters, by_epoch=False,
         milestones=[163889, 177546], gamma=0.1)
]
# AMP as upstream; on a machine without CUDA use OptimWrapper.
optim_wrapper = dict(
    type='AmpOptimWrapper',
    constructor='LayerDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1),
    paramwise_cfg=dict(num_layers=24, layer_decay_rate=0.837))
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=20000, max_keep_ckpts=3))
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)
auto_scale_lr = dict(enable=False, base_batch_size=64)

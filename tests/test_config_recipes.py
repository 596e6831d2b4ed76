"""Pin the training recipe of every main config to the official recipe it claims.

Each entry lists, field by field, what the upstream recipe sets (optimizer, lr, weight decay
and its exceptions, warm-up and schedule, length, batch, drop path, augmentation, test
pipeline, heads), with the upstream file it was read from. A config edit that changes any of
these fails here with the field, our value and the recipe's value; a deliberate change must
update the entry (and the config's header comment, which says where we differ and why).

Sources (read at the commits named in the configs' headers):

* MLLA: LeapLabTHU/MLLA ``downstream/detection/configs/mlla/mlla_{t,s,b}_mrcnn_{1x,3x}.py``
  (mmdet 2.x: ``schedule_1x`` warm-up 500 iterations) and
  ``downstream/segmentation/configs/mlla/mlla_b_upernet.py``.
* VMamba: MzeroMiko/VMamba ``detection/configs/vssm1/mask_rcnn_vssm_fpn_coco_*.py`` (on mmdet's
  ``swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py``: warm-up 1000) and
  ``segmentation/configs/vssm1/upernet_vssm_4xb4-160k_ade20k-512x512_*.py`` (on mmseg's Swin
  UperNet config).
* Vim: hustvl/Vim ``seg/configs/vim/upernet/upernet_vim_{tiny,small}_24_512_slide_60k.py`` with
  ``seg/scripts/ft_vim_{tiny,small}_upernet.sh``, and
  ``det/projects/ViTDet/configs/COCO/cascade_mask_rcnn_vimdet_t_100ep_adj1.py``.
* MambaOut: the paper (arXiv 2405.07992, Sec. 4.3/4.4) and the authors' answers in
  yuweihao/MambaOut#251 (Swin config, lr 1e-4, drop path T 0.3 / S 0.3-0.4 / B 0.6).
* HRVMamba: zhanghao5201/HRVMamba (7222bc4)
  ``semantic_segmentation/configs/hrvmamba/hrvmamba_base_160k_ade20k-512x512_base.py`` (on
  mmseg's upernet_swin / schedule_160k); no detection recipe upstream: ours is the Swin 1x.
* HRVMamba pose: zhanghao5201/HRVMamba ``pose_estimation/configs/cocofinal/
  td-hm_hrvmamba_{tiny,small,base}_8xb32-210e_coco-{256x192,384x288}.py`` (mmpose 1.3.1).
* MHS-VM: PixDeep/MHS-VM ``configs/config_setting.py``, ``utils.py`` (transforms, BceDiceLoss)
  and ``test.py`` (t = 0.4 at test time, set with --cfg-options). The MHS VMamba-style
  backbone has no upstream recipe: its UperNet / Mask R-CNN configs take VMamba-T's.
"""
import glob
import os.path as osp

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
MAIN_CONFIGS = sorted(osp.basename(p) for p in glob.glob(osp.join(ROOT, 'configs', '*.py')))

# -- shared pieces -----------------------------------------------------------------------
NO_DECAY_SWIN = {'absolute_pos_embed': {'decay_mult': 0.0},
                 'relative_position_bias_table': {'decay_mult': 0.0},
                 'norm': {'decay_mult': 0.0}}


def det_schedule(warmup_iters, epochs, milestones):
    return [
        dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=warmup_iters),
        dict(type='MultiStepLR', begin=0, end=epochs, by_epoch=True, milestones=milestones,
             gamma=0.1)]


def seg_poly(warmup_iters, max_iters):
    return [
        dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=warmup_iters),
        dict(type='PolyLR', eta_min=0.0, power=1.0, begin=warmup_iters, end=max_iters,
             by_epoch=False)]


DET_TRAIN_SINGLE_SCALE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')]
_MS = [(480, 1333), (512, 1333), (544, 1333), (576, 1333), (608, 1333), (640, 1333),
       (672, 1333), (704, 1333), (736, 1333), (768, 1333), (800, 1333)]
DET_TRAIN_MS_CROP = [  # DETR / Sparse R-CNN augmentation
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomChoice', transforms=[
        [dict(type='RandomChoiceResize', scales=_MS, keep_ratio=True)],
        [dict(type='RandomChoiceResize', scales=[(400, 1333), (500, 1333), (600, 1333)],
              keep_ratio=True),
         dict(type='RandomCrop', crop_type='absolute_range', crop_size=(384, 600),
              allow_negative_crop=True),
         dict(type='RandomChoiceResize', scales=_MS, keep_ratio=True)]]),
    dict(type='PackDetInputs')]
DET_TEST = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs')]
MASK_RCNN_HEADS = {
    'model.type': 'MaskRCNN',
    'model.neck.type': 'FPN', 'model.neck.out_channels': 256, 'model.neck.num_outs': 5,
    'model.rpn_head.type': 'RPNHead',
    'model.roi_head.type': 'StandardRoIHead',
    'model.roi_head.bbox_head.type': 'Shared2FCBBoxHead',
    'model.roi_head.mask_head.num_convs': 4,
    'model.train_cfg.rpn_proposal.max_per_img': 1000,
    'model.test_cfg.rcnn.max_per_img': 100,
    'model.data_preprocessor.pad_size_divisor': 32,
}

SEG_TRAIN = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=(512, 512), cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')]
SEG_TEST = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')]
UPERNET_HEADS = {
    'model.type': 'EncoderDecoder',
    'model.decode_head.type': 'UPerHead', 'model.decode_head.pool_scales': (1, 2, 3, 6),
    'model.decode_head.num_classes': 150, 'model.decode_head.dropout_ratio': 0.1,
    'model.auxiliary_head.type': 'FCNHead', 'model.auxiliary_head.in_index': 2,
    'model.auxiliary_head.channels': 256,
    'model.auxiliary_head.loss_decode.loss_weight': 0.4,
    'model.data_preprocessor.size': (512, 512),
}

# mmdet's Swin-T Mask R-CNN 1x (VMamba's and, per its authors, MambaOut's base recipe).
DET_SWIN_1X = {
    **MASK_RCNN_HEADS,
    'optim_wrapper.type': 'OptimWrapper',
    'optim_wrapper.optimizer': dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999),
                                    weight_decay=0.05),
    'optim_wrapper.paramwise_cfg.custom_keys': NO_DECAY_SWIN,
    'param_scheduler': det_schedule(1000, 12, [8, 11]),
    'train_cfg.max_epochs': 12,
    'train_dataloader.batch_size': 2,   # x 8 GPUs = 16
    'train_pipeline': DET_TRAIN_SINGLE_SCALE,
    'test_pipeline': DET_TEST,
}
DET_SWIN_3X_MS = {**DET_SWIN_1X, 'param_scheduler': det_schedule(1000, 36, [27, 33]),
                  'train_cfg.max_epochs': 36, 'train_pipeline': DET_TRAIN_MS_CROP}
# MLLA's mmdet 2.x configs: schedule_1x's 500-iteration warm-up, ms + crop even for 1x.
DET_MLLA_1X = {**DET_SWIN_1X, 'param_scheduler': det_schedule(500, 12, [8, 11]),
               'train_pipeline': DET_TRAIN_MS_CROP}
DET_MLLA_3X = {**DET_MLLA_1X, 'param_scheduler': det_schedule(500, 36, [27, 33]),
               'train_cfg.max_epochs': 36}
# Vim Mask R-CNN + FPN: no upstream recipe; the 1x recipe with Vim's detection layer decay.
DET_VIM_1X = {**{k: v for k, v in DET_SWIN_1X.items() if not k.startswith('optim_wrapper.')},
              'optim_wrapper.type': 'OptimWrapper',
              'optim_wrapper.optimizer': dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999),
                                              weight_decay=0.05),
              'optim_wrapper.constructor': 'LayerDecayOptimWrapperConstructor',
              'optim_wrapper.paramwise_cfg': dict(layer_decay_rate=0.837)}

# mmseg's Swin UperNet 160k (MLLA's and VMamba's recipe).
SEG_SWIN_160K = {
    **UPERNET_HEADS,
    'model.decode_head.channels': 512,
    'model.test_cfg.mode': 'whole',
    'optim_wrapper.type': 'OptimWrapper',
    'optim_wrapper.optimizer': dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999),
                                    weight_decay=0.01),
    'optim_wrapper.paramwise_cfg.custom_keys': NO_DECAY_SWIN,
    'param_scheduler': seg_poly(1500, 160000),
    'train_cfg.max_iters': 160000,
    'train_cfg.val_interval': 16000,
    'train_dataloader.batch_size': 2,   # x 8 GPUs = 16
    'train_pipeline': SEG_TRAIN,
    'test_pipeline': SEG_TEST,
}
# MambaOut: the Swin config with lr 1e-4 for every size (paper Sec. 4.4, #251).
SEG_MAMBAOUT = {**SEG_SWIN_160K,
                'optim_wrapper.optimizer': dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999),
                                                weight_decay=0.01)}
# Vim UperNet 60k (BEiT-style config + the fine-tuning scripts' overrides).
SEG_VIM_60K = {
    **UPERNET_HEADS,
    'model.test_cfg': dict(mode='slide', crop_size=(512, 512), stride=(341, 341)),
    'optim_wrapper.type': 'AmpOptimWrapper',
    'optim_wrapper.constructor': 'LayerDecayOptimWrapperConstructor',
    'param_scheduler': seg_poly(1500, 60000),
    'train_cfg.max_iters': 60000,
    'train_dataloader.batch_size': 8,   # x 4 GPUs = 32
    'train_pipeline': SEG_TRAIN,
    'test_pipeline': SEG_TEST,
}


# mmpose's top-down heatmap recipe as HRVMamba's COCO configs set it.
def pose_codec(width, height, sigma):
    return dict(type='MSRAHeatmap', input_size=(width, height),
                heatmap_size=(width // 4, height // 4), sigma=sigma)


def pose_pipelines(codec):
    affine = dict(type='TopdownAffine', input_size=codec['input_size'])
    return {
        'train_pipeline': [
            dict(type='LoadImage'), dict(type='GetBBoxCenterScale'),
            dict(type='RandomFlip', direction='horizontal'), dict(type='RandomHalfBody'),
            dict(type='RandomBBoxTransform'), affine,
            dict(type='GenerateTarget', encoder=codec), dict(type='PackPoseInputs')],
        'test_pipeline': [dict(type='LoadImage'), dict(type='GetBBoxCenterScale'), affine,
                          dict(type='PackPoseInputs')],
    }


def td_hm_hrvmamba(arch, c0, drops, checkpoint, codec, batch, val_interval=2):
    drop_path, ssm_drop, mlp_drop = drops
    return {
        'default_scope': 'mmpose',
        'model.type': 'TopdownPoseEstimator',
        'model.data_preprocessor': dict(type='PoseDataPreprocessor',
                                        mean=[123.675, 116.28, 103.53],
                                        std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
        'model.backbone.type': 'HRVMamba', 'model.backbone.arch': arch,
        'model.backbone.out_indices': (0,), 'model.backbone.with_out_norms': False,
        'model.backbone.esinb_drop_path': False,
        'model.backbone.drop_path_rate': drop_path, 'model.backbone.ssm_drop_rate': ssm_drop,
        'model.backbone.mlp_drop_rate': mlp_drop,
        'model.backbone.norm_cfg': dict(type='SyncBN', requires_grad=True),
        'model.backbone.init_cfg': dict(type='Pretrained',
                                        checkpoint=f'checkpoints/{checkpoint}'),
        'model.head': dict(type='HeatmapHead', in_channels=c0, out_channels=17,
                           deconv_out_channels=None, decoder=codec,
                           loss=dict(type='KeypointMSELoss', use_target_weight=True)),
        'model.test_cfg': dict(flip_test=True, flip_mode='heatmap', shift_heatmap=True),
        'optim_wrapper.optimizer': dict(type='AdamW', lr=5e-4, betas=(0.9, 0.999),
                                        weight_decay=0.01),
        'optim_wrapper.paramwise_cfg.custom_keys': {
            'relative_position_bias_table': {'decay_mult': 0.0}},
        'param_scheduler': [
            dict(type='LinearLR', begin=0, end=500, start_factor=0.001, by_epoch=False),
            dict(type='MultiStepLR', begin=0, end=210, milestones=[170, 200], gamma=0.1,
                 by_epoch=True)],
        'train_cfg.max_epochs': 210,
        'train_cfg.val_interval': val_interval,
        'auto_scale_lr.base_batch_size': 256,
        'train_dataloader.batch_size': batch,   # x 8 GPUs
        'val_dataloader.batch_size': batch,
        'train_dataloader.dataset.type': 'CocoDataset',
        'train_dataloader.dataset.data_mode': 'topdown',
        'test_dataloader.dataset.bbox_file':
            'data/coco/person_detection_results/COCO_val2017_detections_AP_H_56_person.json',
        'test_evaluator.type': 'CocoMetric',
        'default_hooks.checkpoint.save_best': 'coco/AP',
        **pose_pipelines(codec),
    }


POSE_256 = pose_codec(192, 256, 2)
POSE_384 = pose_codec(288, 384, 3)


# MHS-VM / VM-UNet on ISIC (configs/config_setting.py): from scratch, 256^2, batch 32,
# 300 epochs, AdamW 1e-3, cosine T_max 50 per epoch, BCE + Dice, flips and rotation.
ISIC_TRAIN = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadBinaryMask', threshold=0.5),
    dict(type='MinMaxNormalize'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomFlip', prob=0.5, direction='vertical'),
    dict(type='RandomRotate', prob=0.5, degree=(0, 360), pad_val=0, seg_pad_val=0),
    dict(type='Resize', scale=(256, 256), keep_ratio=False),
    dict(type='PackSegInputs')]
ISIC_TEST = [
    dict(type='LoadImageFromFile'),
    dict(type='MinMaxNormalize'),
    dict(type='Resize', scale=(256, 256), keep_ratio=False),
    dict(type='LoadBinaryMask', threshold=0.5),
    dict(type='PackSegInputs')]


def mhs_isic(heads, dataset, sra_threshold):
    return {
        'model.type': 'VMUNetSegmentor',
        'model.backbone.type': 'VMUNet', 'model.backbone.arch': f'{heads}h',
        'model.backbone.sra_threshold': sra_threshold, 'model.backbone.drop_path_rate': 0.2,
        'model.decode_head.type': 'VMUNetHead', 'model.decode_head.out_channels': 1,
        'model.decode_head.threshold': 0.5,
        'model.decode_head.loss_decode': [
            dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0,
                 loss_name='loss_bce'),
            dict(type='BinaryDiceLoss', smooth=1.0, loss_weight=1.0)],
        'model.data_preprocessor.mean': [0.0, 0.0, 0.0],
        'model.data_preprocessor.std': [1.0, 1.0, 1.0],
        'optim_wrapper.type': 'OptimWrapper',
        'optim_wrapper.optimizer': dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                                        weight_decay=1e-2),
        'param_scheduler': [dict(type='CosineAnnealingLR', T_max=50, eta_min=1e-5,
                                 by_epoch=True, begin=0, end=300)],
        'train_cfg.type': 'EpochBasedTrainLoop', 'train_cfg.max_epochs': 300,
        'train_cfg.val_begin': 101, 'train_cfg.val_interval': 1,
        'train_dataloader.batch_size': 32,
        'train_dataloader.dataset.data_root': f'data/isic20{dataset}',
        'randomness.seed': 42,
        'train_pipeline': ISIC_TRAIN,
        'test_pipeline': ISIC_TEST,
        'val_evaluator.type': 'BinarySegMetric',
    }


MHS_VMAMBA_T = {'model.backbone.type': 'MHSVMamba', 'model.backbone.arch': 'tiny',
                'model.backbone.drop_path_rate': 0.2, 'model.backbone.sra_threshold': 0.5,
                'model.backbone.init_cfg': None}


def backbone(type_, arch, drop_path, checkpoint, **extra):
    fields = {'model.backbone.type': type_, 'model.backbone.arch': arch,
              'model.backbone.drop_path_rate': drop_path,
              'model.backbone.init_cfg': dict(type='Pretrained',
                                              checkpoint=f'checkpoints/{checkpoint}')}
    fields.update({f'model.backbone.{k}': v for k, v in extra.items()})
    return fields


def det_channels(channels):
    return {'model.neck.in_channels': channels}


def seg_channels(channels, decode=None):
    fields = {'model.decode_head.in_channels': channels,
              'model.auxiliary_head.in_channels': channels[2]}
    if decode:
        fields['model.decode_head.channels'] = decode
    return fields


MLLA_C = ([64, 128, 256, 512], [64, 128, 256, 512], [96, 192, 384, 768])
VMAMBA_CKPT = dict(tiny='vssm1_tiny_0230s_ckpt_epoch_264.pth',
                   small='vssm_small_0229_ckpt_epoch_222.pth',
                   base='vssm_base_0229_ckpt_epoch_237.pth')
VIM_CKPT = dict(tiny='vim_t_midclstok_76p1acc.pth', small='vim_s_midclstok_80p5acc.pth')

RECIPES = {
    # -- MLLA ---------------------------------------------------------------------------
    'mask_rcnn_mlla_t.py': {**DET_MLLA_1X, **backbone('MLLA', 'tiny', 0.1, 'MLLA_T.pth'),
                            **det_channels(MLLA_C[0])},
    'mask_rcnn_mlla_s.py': {**DET_MLLA_1X, **backbone('MLLA', 'small', 0.1, 'MLLA_S.pth'),
                            **det_channels(MLLA_C[1])},
    'mask_rcnn_mlla_b.py': {**DET_MLLA_1X, **backbone('MLLA', 'base', 0.1, 'MLLA_B.pth'),
                            **det_channels(MLLA_C[2])},
    'mask_rcnn_mlla_t_3x.py': {**DET_MLLA_3X, **backbone('MLLA', 'tiny', 0.3, 'MLLA_T.pth'),
                               **det_channels(MLLA_C[0])},
    'mask_rcnn_mlla_s_3x.py': {**DET_MLLA_3X, **backbone('MLLA', 'small', 0.3, 'MLLA_S.pth'),
                               **det_channels(MLLA_C[1])},
    'upernet_mlla_b.py': {**SEG_SWIN_160K, **backbone('MLLA', 'base', 0.5, 'MLLA_B.pth'),
                          **seg_channels(MLLA_C[2])},
    # T/S: no published recipe; B's with the ImageNet drop path (T) / 0.3 (S).
    'upernet_mlla_t.py': {**SEG_SWIN_160K, **backbone('MLLA', 'tiny', 0.2, 'MLLA_T.pth'),
                          **seg_channels(MLLA_C[0])},
    'upernet_mlla_s.py': {**SEG_SWIN_160K, **backbone('MLLA', 'small', 0.3, 'MLLA_S.pth'),
                          **seg_channels(MLLA_C[1])},
    # -- VMamba ---------------------------------------------------------------------------
    'mask_rcnn_vmamba_t.py': {**DET_SWIN_1X,
                              **backbone('VMamba', 'tiny', 0.2, VMAMBA_CKPT['tiny']),
                              **det_channels([96, 192, 384, 768])},
    'mask_rcnn_vmamba_s.py': {**DET_SWIN_1X,
                              **backbone('VMamba', 'small', 0.3, VMAMBA_CKPT['small']),
                              **det_channels([96, 192, 384, 768])},
    'mask_rcnn_vmamba_b.py': {**DET_SWIN_1X,
                              **backbone('VMamba', 'base', 0.6, VMAMBA_CKPT['base']),
                              **det_channels([128, 256, 512, 1024])},
    'mask_rcnn_vmamba_t_3x.py': {**DET_SWIN_3X_MS,
                                 **backbone('VMamba', 'tiny', 0.2, VMAMBA_CKPT['tiny']),
                                 **det_channels([96, 192, 384, 768])},
    'mask_rcnn_vmamba_s_3x.py': {**DET_SWIN_3X_MS,
                                 **backbone('VMamba', 'small', 0.3, VMAMBA_CKPT['small']),
                                 **det_channels([96, 192, 384, 768])},
    'upernet_vmamba_t.py': {**SEG_SWIN_160K,
                            **backbone('VMamba', 'tiny', 0.2, VMAMBA_CKPT['tiny']),
                            **seg_channels([96, 192, 384, 768])},
    'upernet_vmamba_s.py': {**SEG_SWIN_160K,
                            **backbone('VMamba', 'small', 0.3, VMAMBA_CKPT['small']),
                            **seg_channels([96, 192, 384, 768])},
    'upernet_vmamba_b.py': {**SEG_SWIN_160K,
                            **backbone('VMamba', 'base', 0.6, VMAMBA_CKPT['base']),
                            **seg_channels([128, 256, 512, 1024])},
    # -- Vim ------------------------------------------------------------------------------
    'mask_rcnn_vim_t.py': {**DET_VIM_1X,
                           **backbone('Vim', 'tiny', 0.1, VIM_CKPT['tiny'],
                                      out_indices=(5, 11, 17, 23), feature_type='residual'),
                           **det_channels([192] * 4)},
    'mask_rcnn_vim_s.py': {**DET_VIM_1X,
                           **backbone('Vim', 'small', 0.1, VIM_CKPT['small'],
                                      out_indices=(5, 11, 17, 23), feature_type='residual'),
                           **det_channels([384] * 4)},
    'upernet_vim_t.py': {**SEG_VIM_60K,
                         'optim_wrapper.optimizer': dict(type='AdamW', lr=2e-4,
                                                         betas=(0.9, 0.999), weight_decay=0.1),
                         'optim_wrapper.paramwise_cfg': dict(num_layers=24,
                                                             layer_decay_rate=0.92),
                         **backbone('Vim', 'tiny', 0.1, VIM_CKPT['tiny'],
                                    out_indices=(5, 11, 17, 23), feature_type='mixer'),
                         **seg_channels([192] * 4, decode=192)},
    'upernet_vim_s.py': {**SEG_VIM_60K,
                         'optim_wrapper.optimizer': dict(type='AdamW', lr=1e-4,
                                                         betas=(0.9, 0.999), weight_decay=0.05),
                         'optim_wrapper.paramwise_cfg': dict(num_layers=24,
                                                             layer_decay_rate=0.95),
                         **backbone('Vim', 'small', 0.1, VIM_CKPT['small'],
                                    out_indices=(5, 11, 17, 23), feature_type='residual'),
                         **seg_channels([384] * 4, decode=384)},
    'cascade_mask_rcnn_vim_t.py': {
        'model.type': 'CascadeRCNN',
        'model.rpn_head.num_convs': 2,
        'model.roi_head.type': 'CascadeRoIHead',
        'model.roi_head.num_stages': 3,
        'model.roi_head.stage_loss_weights': [1, 0.5, 0.25],
        'model.roi_head.bbox_head.0.type': 'Shared4Conv1FCBBoxHead',
        'model.roi_head.bbox_head.0.reg_class_agnostic': True,
        'model.roi_head.mask_head.num_convs': 4,
        'model.train_cfg.rcnn.2.assigner.pos_iou_thr': 0.7,
        'optim_wrapper.type': 'AmpOptimWrapper',
        'optim_wrapper.constructor': 'LayerDecayOptimWrapperConstructor',
        'optim_wrapper.optimizer': dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999),
                                        weight_decay=0.1),
        'optim_wrapper.paramwise_cfg': dict(num_layers=24, layer_decay_rate=0.837),
        'param_scheduler': [
            dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=250),
            dict(type='MultiStepLR', begin=0, end=184375, by_epoch=False,
                 milestones=[163889, 177546], gamma=0.1)],
        'train_cfg.max_iters': 184375,
        'train_dataloader.batch_size': 4,   # x 16 GPUs = 64
        'train_pipeline': [
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
            dict(type='RandomResize', scale=(1024, 1024), ratio_range=(0.1, 2.0),
                 keep_ratio=True),
            dict(type='RandomCrop', crop_type='absolute_range', crop_size=(1024, 1024),
                 recompute_bbox=True, allow_negative_crop=True),
            dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
            dict(type='RandomFlip', prob=0.5),
            dict(type='PackDetInputs')],
        'test_pipeline': [
            dict(type='LoadImageFromFile'),
            dict(type='Resize', scale=(1024, 1024), keep_ratio=True),
            dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
            dict(type='PackDetInputs')],
        **backbone('Vim', 'tiny', 0.1, VIM_CKPT['tiny'], out_indices=(23,),
                   feature_type='residual'),
    },
    # -- MambaOut (paper + #251; details assumed from the Swin configs, see headers) --------
    'mask_rcnn_mambaout_t.py': {**DET_SWIN_1X,
                                **backbone('MambaOut', 'tiny', 0.3, 'mambaout_tiny.pth'),
                                **det_channels([96, 192, 384, 576])},
    'mask_rcnn_mambaout_s.py': {**DET_SWIN_1X,
                                **backbone('MambaOut', 'small', 0.4, 'mambaout_small.pth'),
                                **det_channels([96, 192, 384, 576])},
    'mask_rcnn_mambaout_b.py': {**DET_SWIN_1X,
                                **backbone('MambaOut', 'base', 0.6, 'mambaout_base.pth'),
                                **det_channels([128, 256, 512, 768])},
    'upernet_mambaout_t.py': {**SEG_MAMBAOUT,
                              **backbone('MambaOut', 'tiny', 0.3, 'mambaout_tiny.pth'),
                              **seg_channels([96, 192, 384, 576])},
    'upernet_mambaout_s.py': {**SEG_MAMBAOUT,
                              **backbone('MambaOut', 'small', 0.4, 'mambaout_small.pth'),
                              **seg_channels([96, 192, 384, 576])},
    'upernet_mambaout_b.py': {**SEG_MAMBAOUT,
                              **backbone('MambaOut', 'base', 0.6, 'mambaout_base.pth'),
                              **seg_channels([128, 256, 512, 768])},
    'upernet_hrvmamba_b.py': {
        **SEG_SWIN_160K,
        'optim_wrapper.paramwise_cfg.custom_keys': {'norm': {'decay_mult': 0.0}},
        'param_scheduler': [
            dict(type='LinearLR', start_factor=1e-5, by_epoch=False, begin=0, end=1500),
            dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000,
                 by_epoch=False)],
        **backbone('HRVMamba', 'base', 0.15, 'hrvmamba_base_best.pth', with_neck=True,
                   out_indices=(0, 1, 2, 3), norm_cfg=dict(type='SyncBN', requires_grad=True)),
        **seg_channels([128, 256, 512, 2048])},
    'mask_rcnn_hrvmamba_s.py': {**DET_SWIN_1X,
                                **backbone('HRVMamba', 'small', 0.1, 'hrvmamba_small_best.pth',
                                           out_indices=(0, 1, 2, 3)),
                                **det_channels([32, 64, 128, 256])},
    'mask_rcnn_hrvmamba_b.py': {**DET_SWIN_1X,
                                **backbone('HRVMamba', 'base', 0.2, 'hrvmamba_base_best.pth',
                                           out_indices=(0, 1, 2, 3)),
                                **det_channels([80, 160, 320, 640])},
    # -- HRVMamba pose (every field upstream's; batch per GPU as upstream's files set it) ---
    'td-hm_hrvmamba_t_coco-256x192.py': td_hm_hrvmamba(
        'tiny', 16, (0.0, 0.0, 0.0), 'hrvmamba_tinynew_best.pth', POSE_256, batch=128),
    'td-hm_hrvmamba_s_coco-256x192.py': td_hm_hrvmamba(
        'small', 32, (0.1, 0.1, 0.1), 'hrvmamba_small_best.pth', POSE_256, batch=64),
    'td-hm_hrvmamba_b_coco-256x192.py': td_hm_hrvmamba(
        'base', 80, (0.2, 0.0, 0.0), 'hrvmamba_base_best.pth', POSE_256, batch=64),
    'td-hm_hrvmamba_s_coco-384x288.py': td_hm_hrvmamba(
        'small', 32, (0.1, 0.1, 0.1), 'hrvmamba_small_best.pth', POSE_384, batch=64),
    'td-hm_hrvmamba_b_coco-384x288.py': td_hm_hrvmamba(
        'base', 80, (0.6, 0.2, 0.2), 'hrvmamba_base_best.pth', POSE_384, batch=32,
        val_interval=1),
    # -- MHS-VM (upstream trains ISIC18 with t = 0.5, ISIC17 with t = 0.0) ------------------
    'vmunet_mhs_4h_isic18.py': mhs_isic(4, 18, 0.5),
    'vmunet_mhs_3h_isic18.py': mhs_isic(3, 18, 0.5),
    'vmunet_mhs_4h_isic17.py': mhs_isic(4, 17, 0.0),
    'vmunet_mhs_3h_isic17.py': mhs_isic(3, 17, 0.0),
    # no upstream recipe: VMamba-T's, from scratch (no ImageNet weights exist)
    'upernet_mhs_vmamba_t.py': {**SEG_SWIN_160K, **MHS_VMAMBA_T,
                                **seg_channels([96, 192, 384, 768])},
    'mask_rcnn_mhs_vmamba_t.py': {**DET_SWIN_1X, **MHS_VMAMBA_T,
                                  **det_channels([96, 192, 384, 768])},
}


def _plain(value):
    """ConfigDicts and tuples -> dicts and lists, so values compare by content."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


_IGNORED_TRANSFORM_KEYS = ('backend_args', 'meta_keys')


def _pipeline(pipeline):
    """A pipeline without I/O details (file backend, packed meta keys)."""
    out = []
    for transform in _plain(pipeline):
        out.append({k: (_pipeline(v) if k == 'transforms' else v)
                    for k, v in transform.items() if k not in _IGNORED_TRANSFORM_KEYS}
                   if isinstance(transform, dict) else _pipeline(transform))
    return out


def _field(cfg, path):
    if path == 'train_pipeline':
        return _pipeline(cfg.train_dataloader.dataset.pipeline)
    if path == 'test_pipeline':
        return _pipeline(cfg.test_dataloader.dataset.pipeline)
    value = cfg
    for part in path.split('.'):
        value = value[int(part)] if isinstance(value, (list, tuple)) else value[part]
    return _plain(value)


@pytest.fixture(scope='module')
def configs():
    from mmengine.config import Config
    cache = {}

    def load(name):
        if name not in cache:
            cache[name] = Config.fromfile(osp.join(ROOT, 'configs', name))
        return cache[name]
    return load


def test_every_main_config_has_a_pinned_recipe():
    assert sorted(RECIPES) == MAIN_CONFIGS, (
        f'unpinned: {sorted(set(MAIN_CONFIGS) - set(RECIPES))}, '
        f'stale: {sorted(set(RECIPES) - set(MAIN_CONFIGS))}')


@pytest.mark.parametrize('name', sorted(RECIPES))
def test_config_follows_its_recipe(name, configs):
    cfg = configs(name)
    wrong = []
    for path, expected in RECIPES[name].items():
        try:
            actual = _field(cfg, path)
        except (KeyError, IndexError, AttributeError):
            actual = '<missing>'
        if actual != _plain(expected):
            wrong.append(f'{path}: config has {actual!r}, recipe says {_plain(expected)!r}')
    assert not wrong, f'configs/{name} drifted from its recipe:\n  ' + '\n  '.join(wrong)


def test_mlla_detection_warms_up_500_iterations_like_mmdet2(configs):
    """The known slip: mmdet 3.x's Swin schedule warms up for 1000, MLLA's mmdet 2.x 500."""
    for name in ('mask_rcnn_mlla_t.py', 'mask_rcnn_mlla_s.py', 'mask_rcnn_mlla_b.py',
                 'mask_rcnn_mlla_t_3x.py', 'mask_rcnn_mlla_s_3x.py'):
        warmup = configs(name).param_scheduler[0]
        assert (warmup.type, warmup.end, warmup.start_factor) == ('LinearLR', 500, 0.001), name

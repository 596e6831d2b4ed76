# Mask R-CNN + FPN, Vim-Ti, COCO, 1x (12 epochs).
# Upstream has no Mask R-CNN + FPN config for Vim (its detection results use ViTDet-style
# Cascade Mask R-CNN, see cascade_mask_rcnn_vim_t.py); this is the standard 1x recipe with
# the Vim fine-tuning choices: the residual stream after blocks 5/11/17/23 (as the Vim
# detection backbone uses), the simple-pyramid adapter (fpn1..fpn4, strides 4-32) under
# the FPN, AdamW lr 1e-4 / wd 0.05 with layer-wise lr decay 0.837 (the Vim detection value),
# drop_path 0.1. No published result.
# Pretrained: Vim-Ti ImageNet-1k, 76.1 top-1, https://huggingface.co/hustvl/Vim-tiny-midclstok
# (the file's `model` entry), saved as checkpoints/vim_t_midclstok_76p1acc.pth.
_base_ = [
    './_base_/models/mask_rcnn_fpn.py',
    './_base_/datasets/coco_instance.py',
    './_base_/schedules/det_1x.py',
    './_base_/det_runtime.py',
]
embed_dims = 192
pretrained = 'checkpoints/vim_t_midclstok_76p1acc.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='Vim',
        arch='tiny',
        out_indices=(5, 11, 17, 23),
        feature_type='residual',
        drop_path_rate=0.1,
        with_cp=False,
        pretrained_cls_token_position='middle',
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[embed_dims] * 4))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='LayerDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    # no weight decay on biases, norms, pos_embed, A_log, D (built into the constructor)
    paramwise_cfg=dict(layer_decay_rate=0.837))

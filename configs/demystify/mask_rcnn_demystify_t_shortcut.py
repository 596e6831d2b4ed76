# Mask R-CNN + FPN, COCO 1x, DemystifyNet-T, design 'shortcut':
# baseline + Mamba's learnable shortcut D * x.
# Han et al., NeurIPS 2024, Tab. 1, row "+ Shortcut": published ImageNet-1k top-1 77.8
# (28M params, 4.5 GFLOPs at 224x224).
# No dense result is published. Backbone weights: train
# configs/demystify/imagenet_demystify_t_shortcut.py with mmpretrain and save
# its checkpoint as checkpoints/demystify_t_shortcut_in1k.pth
# (or --cfg-options model.backbone.init_cfg=None to start from scratch).
_base_ = ['./_base_/mask_rcnn_demystify_t.py']
model = dict(
    backbone=dict(
        design='shortcut',
        init_cfg=dict(type='Pretrained', prefix='backbone.',
                      checkpoint='checkpoints/demystify_t_shortcut_in1k.pth')))

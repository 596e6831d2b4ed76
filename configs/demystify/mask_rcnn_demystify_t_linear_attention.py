# Mask R-CNN + FPN, COCO 1x, DemystifyNet-T, design 'linear_attention':
# the baseline, Swin-T with global multi-head linear attention (ELU+1).
# Han et al., NeurIPS 2024, Tab. 1/2, row "Baseline": published ImageNet-1k top-1 77.6
# (28M params, 4.5 GFLOPs at 224x224).
# No dense result is published. Backbone weights: train
# configs/demystify/imagenet_demystify_t_linear_attention.py with mmpretrain and save
# its checkpoint as checkpoints/demystify_t_linear_attention_in1k.pth
# (or --cfg-options model.backbone.init_cfg=None to start from scratch).
_base_ = ['./_base_/mask_rcnn_demystify_t.py']
model = dict(
    backbone=dict(
        design='linear_attention',
        init_cfg=dict(type='Pretrained', prefix='backbone.',
                      checkpoint='checkpoints/demystify_t_linear_attention_in1k.pth')))

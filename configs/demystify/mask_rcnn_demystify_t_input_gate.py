# Mask R-CNN + FPN, COCO 1x, DemystifyNet-T, design 'input_gate':
# baseline + Mamba's input gate (values scaled by softplus(x W1 W2 + b)).
# Han et al., NeurIPS 2024, Tab. 1, row "+ Input Gate": published ImageNet-1k top-1 77.8
# (29M params, 4.5 GFLOPs at 224x224).
# No dense result is published. Backbone weights: train
# configs/demystify/imagenet_demystify_t_input_gate.py with mmpretrain and save
# its checkpoint as checkpoints/demystify_t_input_gate_in1k.pth
# (or --cfg-options model.backbone.init_cfg=None to start from scratch).
_base_ = ['./_base_/mask_rcnn_demystify_t.py']
model = dict(
    backbone=dict(
        design='input_gate',
        init_cfg=dict(type='Pretrained', prefix='backbone.',
                      checkpoint='checkpoints/demystify_t_input_gate_in1k.pth')))

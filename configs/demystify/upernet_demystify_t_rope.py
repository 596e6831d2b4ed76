# UperNet, ADE20K, 160k, 512x512, DemystifyNet-T, design 'rope':
# baseline + 2-D RoPE (a forget-gate substitute).
# Han et al., NeurIPS 2024, Tab. 2, row "+ RoPE": published ImageNet-1k top-1 80.0
# (28M params, 4.5 GFLOPs at 224x224).
# No dense result is published. Backbone weights: train
# configs/demystify/imagenet_demystify_t_rope.py with mmpretrain and save
# its checkpoint as checkpoints/demystify_t_rope_in1k.pth
# (or --cfg-options model.backbone.init_cfg=None to start from scratch).
_base_ = ['./_base_/upernet_demystify_t.py']
model = dict(
    backbone=dict(
        design='rope',
        init_cfg=dict(type='Pretrained', prefix='backbone.',
                      checkpoint='checkpoints/demystify_t_rope_in1k.pth')))

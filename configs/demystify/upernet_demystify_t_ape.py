# UperNet, ADE20K, 160k, 512x512, DemystifyNet-T, design 'ape':
# baseline + absolute positional encoding (a forget-gate substitute).
# Han et al., NeurIPS 2024, Tab. 2, row "+ APE": published ImageNet-1k top-1 80.0
# (30M params, 4.5 GFLOPs at 224x224).
# No dense result is published. Backbone weights: train
# configs/demystify/imagenet_demystify_t_ape.py with mmpretrain and save
# its checkpoint as checkpoints/demystify_t_ape_in1k.pth
# (or --cfg-options model.backbone.init_cfg=None to start from scratch).
_base_ = ['./_base_/upernet_demystify_t.py']
model = dict(
    backbone=dict(
        design='ape',
        init_cfg=dict(type='Pretrained', prefix='backbone.',
                      checkpoint='checkpoints/demystify_t_ape_in1k.pth')))

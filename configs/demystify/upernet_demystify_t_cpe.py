# UperNet, ADE20K, 160k, 512x512, DemystifyNet-T, design 'cpe':
# baseline + CPE (a forget-gate substitute).
# Han et al., NeurIPS 2024, Tab. 2, row "+ CPE": published ImageNet-1k top-1 81.7
# (28M params, 4.5 GFLOPs at 224x224).
# No dense result is published. Backbone weights: train
# configs/demystify/imagenet_demystify_t_cpe.py with mmpretrain and save
# its checkpoint as checkpoints/demystify_t_cpe_in1k.pth
# (or --cfg-options model.backbone.init_cfg=None to start from scratch).
_base_ = ['./_base_/upernet_demystify_t.py']
model = dict(
    backbone=dict(
        design='cpe',
        init_cfg=dict(type='Pretrained', prefix='backbone.',
                      checkpoint='checkpoints/demystify_t_cpe_in1k.pth')))

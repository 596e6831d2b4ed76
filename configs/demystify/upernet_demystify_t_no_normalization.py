# UperNet, ADE20K, 160k, 512x512, DemystifyNet-T, design 'no_normalization':
# baseline without the attention normalisation Q.Z (as Mamba).
# Han et al., NeurIPS 2024, Tab. 1, row "- Normalization": published ImageNet-1k top-1 72.4
# (28M params, 4.5 GFLOPs at 224x224).
# No dense result is published. Backbone weights: train
# configs/demystify/imagenet_demystify_t_no_normalization.py with mmpretrain and save
# its checkpoint as checkpoints/demystify_t_no_normalization_in1k.pth
# (or --cfg-options model.backbone.init_cfg=None to start from scratch).
_base_ = ['./_base_/upernet_demystify_t.py']
model = dict(
    backbone=dict(
        design='no_normalization',
        init_cfg=dict(type='Pretrained', prefix='backbone.',
                      checkpoint='checkpoints/demystify_t_no_normalization_in1k.pth')))

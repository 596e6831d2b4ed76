# UperNet, ADE20K, 160k, 512x512, DemystifyNet-T, design 'block_design_sub':
# baseline with Mamba's block (E=1) instead of the attention sub-block.
# Han et al., NeurIPS 2024, Tab. 1, row "+ Block Design sub.": published ImageNet-1k top-1 80.9
# (31M params, 4.8 GFLOPs at 224x224).
# No dense result is published. Backbone weights: train
# configs/demystify/imagenet_demystify_t_block_design_sub.py with mmpretrain and save
# its checkpoint as checkpoints/demystify_t_block_design_sub_in1k.pth
# (or --cfg-options model.backbone.init_cfg=None to start from scratch).
_base_ = ['./_base_/upernet_demystify_t.py']
model = dict(
    backbone=dict(
        design='block_design_sub',
        init_cfg=dict(type='Pretrained', prefix='backbone.',
                      checkpoint='checkpoints/demystify_t_block_design_sub_in1k.pth')))

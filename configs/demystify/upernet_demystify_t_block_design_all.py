# UperNet, ADE20K, 160k, 512x512, DemystifyNet-T, design 'block_design_all':
# baseline with Mamba's block (E=2) instead of the whole Transformer block.
# Han et al., NeurIPS 2024, Tab. 1, row "+ Block Design all.": published ImageNet-1k top-1 79.4
# (28M params, 4.7 GFLOPs at 224x224).
# No dense result is published. Backbone weights: train
# configs/demystify/imagenet_demystify_t_block_design_all.py with mmpretrain and save
# its checkpoint as checkpoints/demystify_t_block_design_all_in1k.pth
# (or --cfg-options model.backbone.init_cfg=None to start from scratch).
_base_ = ['./_base_/upernet_demystify_t.py']
model = dict(
    backbone=dict(
        design='block_design_all',
        init_cfg=dict(type='Pretrained', prefix='backbone.',
                      checkpoint='checkpoints/demystify_t_block_design_all_in1k.pth')))

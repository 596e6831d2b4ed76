# UperNet, ADE20K, 160k, 512x512, DemystifyNet-T, design 'single_head':
# baseline with one head of d_state=16 query/key channels (as Mamba).
# Han et al., NeurIPS 2024, Tab. 1, row "- Multi-head Design": published ImageNet-1k top-1 73.5
# (24M params, 3.9 GFLOPs at 224x224).
# No dense result is published. Backbone weights: train
# configs/demystify/imagenet_demystify_t_single_head.py with mmpretrain and save
# its checkpoint as checkpoints/demystify_t_single_head_in1k.pth
# (or --cfg-options model.backbone.init_cfg=None to start from scratch).
_base_ = ['./_base_/upernet_demystify_t.py']
model = dict(
    backbone=dict(
        design='single_head',
        init_cfg=dict(type='Pretrained', prefix='backbone.',
                      checkpoint='checkpoints/demystify_t_single_head_in1k.pth')))

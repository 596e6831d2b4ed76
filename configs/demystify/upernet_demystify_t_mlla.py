# UperNet, ADE20K, 160k, 512x512, DemystifyNet-T, design 'mlla':
# MLLA/MILA on this macro architecture: block sub. + LePE + CPE + RoPE.
# Not a row of the paper's tables: no published ImageNet top-1 on this macro
# architecture (MILA-T on its own one, the MLLA backbone: 83.5).
# No dense result is published. Backbone weights: train
# configs/demystify/imagenet_demystify_t_mlla.py with mmpretrain and save
# its checkpoint as checkpoints/demystify_t_mlla_in1k.pth
# (or --cfg-options model.backbone.init_cfg=None to start from scratch).
_base_ = ['./_base_/upernet_demystify_t.py']
model = dict(
    backbone=dict(
        design='mlla',
        init_cfg=dict(type='Pretrained', prefix='backbone.',
                      checkpoint='checkpoints/demystify_t_mlla_in1k.pth')))

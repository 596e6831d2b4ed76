# ImageNet-1k classification (mmpretrain), DemystifyNet-T, design 'block_design_sub':
# baseline with Mamba's block (E=1) instead of the attention sub-block.
# Han et al., NeurIPS 2024, Tab. 1, row "+ Block Design sub.": published ImageNet-1k top-1 80.9
# (31M params, 4.8 GFLOPs at 224x224).
_base_ = ['./_base_/imagenet_demystify_t.py']
model = dict(backbone=dict(design='block_design_sub'))

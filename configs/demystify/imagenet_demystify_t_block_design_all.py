# ImageNet-1k classification (mmpretrain), DemystifyNet-T, design 'block_design_all':
# baseline with Mamba's block (E=2) instead of the whole Transformer block.
# Han et al., NeurIPS 2024, Tab. 1, row "+ Block Design all.": published ImageNet-1k top-1 79.4
# (28M params, 4.7 GFLOPs at 224x224).
_base_ = ['./_base_/imagenet_demystify_t.py']
model = dict(backbone=dict(design='block_design_all'))

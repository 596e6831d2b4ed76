# ImageNet-1k classification (mmpretrain), DemystifyNet-T, design 'mamba':
# all six of Mamba's designs, with Mamba's plain B/C projections.
# Not a row of the paper's tables: no published ImageNet top-1 on this macro
# architecture.
_base_ = ['./_base_/imagenet_demystify_t.py']
model = dict(backbone=dict(design='mamba'))

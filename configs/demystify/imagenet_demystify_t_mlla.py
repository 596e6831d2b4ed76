# ImageNet-1k classification (mmpretrain), DemystifyNet-T, design 'mlla':
# MLLA/MILA on this macro architecture: block sub. + LePE + CPE + RoPE.
# Not a row of the paper's tables: no published ImageNet top-1 on this macro
# architecture (MILA-T on its own one, the MLLA backbone: 83.5).
_base_ = ['./_base_/imagenet_demystify_t.py']
model = dict(backbone=dict(design='mlla'))

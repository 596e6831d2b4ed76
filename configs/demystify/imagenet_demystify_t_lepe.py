# ImageNet-1k classification (mmpretrain), DemystifyNet-T, design 'lepe':
# baseline + LePE (a forget-gate substitute).
# Han et al., NeurIPS 2024, Tab. 2, row "+ LePE": published ImageNet-1k top-1 81.6
# (28M params, 4.5 GFLOPs at 224x224).
_base_ = ['./_base_/imagenet_demystify_t.py']
model = dict(backbone=dict(design='lepe'))

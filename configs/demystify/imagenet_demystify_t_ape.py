# ImageNet-1k classification (mmpretrain), DemystifyNet-T, design 'ape':
# baseline + absolute positional encoding (a forget-gate substitute).
# Han et al., NeurIPS 2024, Tab. 2, row "+ APE": published ImageNet-1k top-1 80.0
# (30M params, 4.5 GFLOPs at 224x224).
_base_ = ['./_base_/imagenet_demystify_t.py']
model = dict(backbone=dict(design='ape'))

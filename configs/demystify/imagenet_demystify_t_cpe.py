# ImageNet-1k classification (mmpretrain), DemystifyNet-T, design 'cpe':
# baseline + CPE (a forget-gate substitute).
# Han et al., NeurIPS 2024, Tab. 2, row "+ CPE": published ImageNet-1k top-1 81.7
# (28M params, 4.5 GFLOPs at 224x224).
_base_ = ['./_base_/imagenet_demystify_t.py']
model = dict(backbone=dict(design='cpe'))

# ImageNet-1k classification (mmpretrain), DemystifyNet-T, design 'rope':
# baseline + 2-D RoPE (a forget-gate substitute).
# Han et al., NeurIPS 2024, Tab. 2, row "+ RoPE": published ImageNet-1k top-1 80.0
# (28M params, 4.5 GFLOPs at 224x224).
_base_ = ['./_base_/imagenet_demystify_t.py']
model = dict(backbone=dict(design='rope'))

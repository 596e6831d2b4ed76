# ImageNet-1k classification (mmpretrain), DemystifyNet-T, design 'shortcut':
# baseline + Mamba's learnable shortcut D * x.
# Han et al., NeurIPS 2024, Tab. 1, row "+ Shortcut": published ImageNet-1k top-1 77.8
# (28M params, 4.5 GFLOPs at 224x224).
_base_ = ['./_base_/imagenet_demystify_t.py']
model = dict(backbone=dict(design='shortcut'))

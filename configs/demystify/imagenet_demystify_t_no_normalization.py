# ImageNet-1k classification (mmpretrain), DemystifyNet-T, design 'no_normalization':
# baseline without the attention normalisation Q.Z (as Mamba).
# Han et al., NeurIPS 2024, Tab. 1, row "- Normalization": published ImageNet-1k top-1 72.4
# (28M params, 4.5 GFLOPs at 224x224).
_base_ = ['./_base_/imagenet_demystify_t.py']
model = dict(backbone=dict(design='no_normalization'))

# ImageNet-1k classification (mmpretrain), DemystifyNet-T, design 'linear_attention':
# the baseline, Swin-T with global multi-head linear attention (ELU+1).
# Han et al., NeurIPS 2024, Tab. 1/2, row "Baseline": published ImageNet-1k top-1 77.6
# (28M params, 4.5 GFLOPs at 224x224).
_base_ = ['./_base_/imagenet_demystify_t.py']
model = dict(backbone=dict(design='linear_attention'))

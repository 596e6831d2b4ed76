# ImageNet-1k classification (mmpretrain), DemystifyNet-T, design 'input_gate':
# baseline + Mamba's input gate (values scaled by softplus(x W1 W2 + b)).
# Han et al., NeurIPS 2024, Tab. 1, row "+ Input Gate": published ImageNet-1k top-1 77.8
# (29M params, 4.5 GFLOPs at 224x224).
_base_ = ['./_base_/imagenet_demystify_t.py']
model = dict(backbone=dict(design='input_gate'))

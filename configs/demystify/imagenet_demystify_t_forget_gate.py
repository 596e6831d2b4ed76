# ImageNet-1k classification (mmpretrain), DemystifyNet-T, design 'forget_gate':
# baseline + Mamba's forget gate (exp(delta A) decay, recurrent: selective scan).
# Han et al., NeurIPS 2024, Tab. 1/2, row "+ Forget Gate": published ImageNet-1k top-1 78.4
# (29M params, 4.8 GFLOPs at 224x224).
_base_ = ['./_base_/imagenet_demystify_t.py']
model = dict(backbone=dict(design='forget_gate'))

# ImageNet-1k classification (mmpretrain), DemystifyNet-T, design 'single_head':
# baseline with one head of d_state=16 query/key channels (as Mamba).
# Han et al., NeurIPS 2024, Tab. 1, row "- Multi-head Design": published ImageNet-1k top-1 73.5
# (24M params, 3.9 GFLOPs at 224x224).
_base_ = ['./_base_/imagenet_demystify_t.py']
model = dict(backbone=dict(design='single_head'))

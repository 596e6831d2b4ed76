# UperNet, ADE20K, 160k, 512x512, DemystifyNet-T, design 'forget_gate':
# baseline + Mamba's forget gate (exp(delta A) decay, recurrent: selective scan).
# Han et al., NeurIPS 2024, Tab. 1/2, row "+ Forget Gate": published ImageNet-1k top-1 78.4
# (29M params, 4.8 GFLOPs at 224x224).
# No dense result is published. Backbone weights: train
# configs/demystify/imagenet_demystify_t_forget_gate.py with mmpretrain and save
# its checkpoint as checkpoints/demystify_t_forget_gate_in1k.pth
# (or --cfg-options model.backbone.init_cfg=None to start from scratch).
_base_ = ['./_base_/upernet_demystify_t.py']
model = dict(
    backbone=dict(
        design='forget_gate',
        init_cfg=dict(type='Pretrained', prefix='backbone.',
                      checkpoint='checkpoints/demystify_t_forget_gate_in1k.pth')))

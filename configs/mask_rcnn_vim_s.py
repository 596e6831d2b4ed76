# Mask R-CNN + FPN, Vim-S, COCO, 1x: the recipe of mask_rcnn_vim_t.py with Vim-S
# (C = 384). No published result.
# Pretrained: Vim-S ImageNet-1k, 80.5 top-1, https://huggingface.co/hustvl/Vim-small-midclstok
# (the file's `model` entry), saved as checkpoints/vim_s_midclstok_80p5acc.pth.
_base_ = ['./mask_rcnn_vim_t.py']
embed_dims = 384
model = dict(
    backbone=dict(
        arch='small',
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/vim_s_midclstok_80p5acc.pth')),
    neck=dict(in_channels=[embed_dims] * 4))

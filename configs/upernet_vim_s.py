# UperNet, Vim-S, ADE20K, 60k iterations, 512x512: the official Vim-S segmentation recipe
# (upernet_vim_small_24_512_slide_60k.py + seg/scripts/ft_vim_small_upernet.sh): the
# residual stream after blocks 5/11/17/23 (use_residual_as_feature=True,
# last_layer_process='add'), UperHead with C = 384 channels, AdamW lr 1e-4, wd 0.05,
# layer decay 0.95; otherwise as upernet_vim_t.py. Upstream's S model also used RoPE and
# a first-position class token (an older, unreleased checkpoint); the published
# middle-class-token checkpoint has neither, so neither is used here. The layer decay is
# applied as configured, not as upstream's constructor ran it (see upernet_vim_t.py).
# Pretrained: https://huggingface.co/hustvl/Vim-small-midclstok (80.5 top-1),
# saved as checkpoints/vim_s_midclstok_80p5acc.pth.
_base_ = ['./upernet_vim_t.py']
embed_dims = 384
model = dict(
    backbone=dict(
        arch='small',
        feature_type='residual',
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/vim_s_midclstok_80p5acc.pth')),
    decode_head=dict(in_channels=[embed_dims] * 4, channels=embed_dims),
    auxiliary_head=dict(in_channels=embed_dims))
optim_wrapper = dict(
    optimizer=dict(lr=1e-4, weight_decay=0.05),
    paramwise_cfg=dict(layer_decay_rate=0.95))

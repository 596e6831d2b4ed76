# CPU demo: Mask R-CNN + FPN with a small Vim (C = 64, 4 blocks, patch 16), from scratch,
# on the generated shapes dataset (make demo); otherwise as mask_rcnn_mlla_demo.py.
# Uses the layer-decay optimizer constructor of the full Vim configs.
_base_ = ['./mask_rcnn_mlla_demo.py']
embed_dims = 64
model = dict(
    backbone=dict(
        _delete_=True,
        type='Vim',
        arch=dict(embed_dims=embed_dims, depth=4, d_state=8),
        out_indices=(0, 1, 2, 3),
        feature_type='residual',
        drop_path_rate=0.0),
    neck=dict(in_channels=[embed_dims] * 4))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='LayerDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(layer_decay_rate=0.9),
    clip_grad=dict(max_norm=10.0, norm_type=2))

# CPU demo / mini-ablation (tools/analysis/demystify_ablation.py): the demo Mask R-CNN of
# configs/demo/mask_rcnn_mlla_demo.py (generated shapes data, 64-channel FPN/heads) with a small
# DemystifyNet (same widths/depths/heads as the MLLA demo backbone) in the row's design:
#   --cfg-options model.backbone.design=forget_gate
_base_ = ['../../demo/mask_rcnn_mlla_demo.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='DemystifyNet',
        arch=dict(embed_dims=32, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8]),
        design='linear_attention',
        drop_path_rate=0.0,
        out_indices=(0, 1, 2, 3)))
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={
    '.A_log': dict(decay_mult=0.),
    'attn.D': dict(decay_mult=0.)
}))

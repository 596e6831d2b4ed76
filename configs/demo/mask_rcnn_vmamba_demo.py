# CPU demo: Mask R-CNN + FPN with a small VMamba (v2 layout: LN2d, ssm_ratio 2, d_state 1,
# 4-route cross scan), trained from scratch on the generated shapes dataset (make demo).
# Everything but the backbone is the MLLA demo's.
_base_ = ['./mask_rcnn_mlla_demo.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='VMamba',
        arch=dict(embed_dims=32, depths=[1, 1, 2, 1], ssm_ratio=2.0, d_state=1),
        drop_path_rate=0.0,
        out_indices=(0, 1, 2, 3)),
    neck=dict(in_channels=[32, 64, 128, 256]))

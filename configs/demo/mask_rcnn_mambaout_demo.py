# CPU demo: Mask R-CNN + FPN with a small MambaOut (Gated CNN blocks, widths 32-64-128-256,
# depths 1-1-2-1), trained from scratch on the generated shapes dataset (make demo).
# Everything but the backbone is the MLLA demo's.
_base_ = ['./mask_rcnn_mlla_demo.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='MambaOut',
        arch=dict(dims=[32, 64, 128, 256], depths=[1, 1, 2, 1]),
        drop_path_rate=0.0,
        out_indices=(0, 1, 2, 3)),
    neck=dict(in_channels=[32, 64, 128, 256]))

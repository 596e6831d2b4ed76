# CPU demo: UperNet with a small VMamba (v2 layout), from scratch, on the generated
# ADE20K-layout data. Everything but the backbone is the MLLA demo's.
_base_ = ['./upernet_mlla_demo.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='VMamba',
        arch=dict(embed_dims=32, depths=[1, 1, 2, 1], ssm_ratio=2.0, d_state=1),
        drop_path_rate=0.0,
        out_indices=(0, 1, 2, 3)),
    decode_head=dict(in_channels=[32, 64, 128, 256]),
    auxiliary_head=dict(in_channels=128))

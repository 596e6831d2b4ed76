# CPU demo: UperNet with a small MambaOut (widths 32-64-128-256, depths 1-1-2-1), from
# scratch, on the generated ADE20K-layout data. Everything but the backbone is the MLLA demo's.
_base_ = ['./upernet_mlla_demo.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='MambaOut',
        arch=dict(dims=[32, 64, 128, 256], depths=[1, 1, 2, 1]),
        drop_path_rate=0.0,
        out_indices=(0, 1, 2, 3)),
    decode_head=dict(in_channels=[32, 64, 128, 256]),
    auxiliary_head=dict(in_channels=128))

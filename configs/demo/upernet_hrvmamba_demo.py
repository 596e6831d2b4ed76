# CPU demo: UperNet with a small HRVMamba (one module per stage, one DVSS block per branch,
# branches 16/32/64/128 as HRVMamba-T), from scratch, on the generated ADE20K-layout data;
# the four branches go straight to the heads (no HRFuseScales neck: its 2048-channel level
# would dominate a demo). Everything but the backbone is the MLLA demo's.
_base_ = ['./upernet_mlla_demo.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='HRVMamba',
        arch=dict(preset='tiny', num_modules=(1, 1, 1), num_blocks=1),
        drop_path_rate=0.0,
        out_indices=(0, 1, 2, 3)),
    decode_head=dict(in_channels=[16, 32, 64, 128]),
    auxiliary_head=dict(in_channels=64))

# CPU demo: UperNet with a small HRVMamba (Tiny's branch widths 16/32/64/128, one module per
# stage, one DVSS block per branch: 9 blocks instead of 44; a 16-wide stage 1 of one
# Bottleneck, as the pose demo), from scratch, on the generated ADE20K-layout data; the four
# branches go straight to the heads (no HRFuseScales neck: its 2048-channel level would
# dominate a demo). Everything but the backbone is the MLLA demo's.
_base_ = ['./upernet_mlla_demo.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='HRVMamba',
        arch=dict(stage1_channels=16, channels=[16, 32, 64, 128], num_modules=(1, 1, 1),
                  num_blocks=1, stage1_blocks=1),
        drop_path_rate=0.0,
        out_indices=(0, 1, 2, 3)),
    decode_head=dict(in_channels=[16, 32, 64, 128]),
    auxiliary_head=dict(in_channels=64))

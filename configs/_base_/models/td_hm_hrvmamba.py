# Top-down heatmap pose estimator on HRVMamba (mmpose's TopdownPoseEstimator): the
# backbone's 1/4-resolution branch (out_indices=(0,), C0 channels) -> HeatmapHead: a 1x1
# conv to 17 heatmaps, no deconvolution; MSE loss weighted by keypoint visibility. Test:
# the heatmaps of the image and of its flip are averaged (the flip's shifted one pixel).
# A config sets the backbone's arch and drop rates, the head's in_channels (= C0) and
# its decoder (= the dataset's codec).
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    type='TopdownPoseEstimator',
    data_preprocessor=dict(
        type='PoseDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    # upstream's pose model: only branch 0 out (stage 4's last module fuses into it alone),
    # no output norm, no stochastic depth on the multi-scale conv branch
    backbone=dict(
        type='HRVMamba',
        arch='small',
        out_indices=(0, ),
        with_out_norms=False,
        esinb_drop_path=False,
        norm_cfg=norm_cfg),
    head=dict(
        type='HeatmapHead',
        in_channels=32,
        out_channels=17,
        deconv_out_channels=None,
        loss=dict(type='KeypointMSELoss', use_target_weight=True)),
    test_cfg=dict(flip_test=True, flip_mode='heatmap', shift_heatmap=True))

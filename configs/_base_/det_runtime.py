# mmdet 3.x runtime. custom_imports makes stock mmdet/mim tools find our backbones.
default_scope = 'mmdet'
custom_imports = dict(imports=['mlla_mm'], allow_failed_imports=False)

# Reliability (README "Reliability", mlla_mm/engine/): --resume repeats the uninterrupted
# run exactly; SIGTERM/SIGUSR1 checkpoint and exit; unloadable training samples are skipped
# with a warning; a NaN/Inf loss stops training before it is checkpointed. A config that
# sets its own custom_hooks keeps these with `custom_hooks = [*_base_.custom_hooks, ...]`.
custom_hooks = [
    dict(type='ExactResumeHook'),
    dict(type='PreemptionHook'),
    dict(type='SkipBadSamplesHook', max_bad_samples=20),
    dict(type='NonFiniteLossHook', action='stop'),
]

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='DetVisualizationHook'))

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),  # tools/ switch to gloo where there is no CUDA
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False

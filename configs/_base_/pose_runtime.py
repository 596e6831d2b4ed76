# mmpose 1.x runtime (mmpose's configs/_base_/default_runtime.py, with HRVMamba's change:
# a checkpoint every epoch, the last 3 kept). custom_imports makes stock mmpose/mim tools
# find our backbones.
default_scope = 'mmpose'
custom_imports = dict(imports=['mlla_mm'], allow_failed_imports=False)

# Reliability hooks as in det_runtime.py (README "Reliability"), then mmpose's own
# SyncBuffersHook (BN buffers synchronised across GPUs after each epoch).
custom_hooks = [
    dict(type='ExactResumeHook'),
    dict(type='PreemptionHook'),
    dict(type='SkipBadSamplesHook', max_bad_samples=20),
    dict(type='NonFiniteLossHook', action='stop'),
    dict(type='SyncBuffersHook'),
]

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3,
                    save_best='coco/AP', rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='PoseVisualizationHook', enable=False))

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),  # tools/ switch to gloo where there is no CUDA
)
vis_backends = [dict(type='LocalVisBackend')]
# matplotlib drawing: mmpose 1.3.2's OpenCV one fails under numpy >= 2.4 (int() of arrays)
visualizer = dict(type='PoseLocalVisualizer', vis_backends=vis_backends, name='visualizer',
                  backend='matplotlib')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True, num_digits=6)
log_level = 'INFO'
load_from = None
resume = False
backend_args = dict(backend='local')

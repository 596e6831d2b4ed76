# mmseg 1.x runtime. custom_imports makes stock mmseg/mim tools find our backbones.
default_scope = 'mmseg'
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
env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),  # tools/ switch to gloo where there is no CUDA
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
tta_model = dict(type='SegTTAModel')

# Mask R-CNN + FPN, MambaOut-Tiny, COCO, 1x (12 epochs): the MambaOut paper's recipe
# (arXiv 2405.07992, Sec. 4.3): Mask R-CNN initialised from the ImageNet weights, standard 1x
# schedule, single-scale training (shorter side 800, longer <= 1333) with flip, AdamW
# lr 1e-4, total batch 16, mmdetection; per-stage output LayerNorms ("add LN for outputs of
# backbone at each stage", author, yuweihao/MambaOut#251).
# Not stated in the paper; assumed from "MambaOut is also based on Swin config" (author,
# yuweihao/MambaOut#251), i.e. mmdet's Swin-T Mask R-CNN 1x: wd 0.05 with none on 'norm'
# keys, 1000-iteration linear warm-up (ratio 0.001), lr steps at epochs 8 and 11.
# drop_path: detection rates are unpublished; the authors' UperNet rates are used
# (T 0.3, S 0.3 or 0.4 -> 0.4, B 0.6; #251).
# Deliberate: batch 16 as 8 GPUs x 2 (paper: 4 RTX 4090 x 4, same total); fp32 OptimWrapper
# (paper: FP16 "to save training costs"; pass --amp on GPUs to match) so that every model
# of the comparison trains alike and the config also runs on a CPU.
# Published: 45.1 box AP / 41.0 mask AP, 43M params, 262G FLOPs (800x1280) (paper Table 2).
# Pretrained: mambaout_tiny.pth (ImageNet-1k, 82.7 top-1) from
# https://github.com/yuweihao/MambaOut/releases/download/model/mambaout_tiny.pth,
# saved as checkpoints/mambaout_tiny.pth.
_base_ = [
    './_base_/models/mask_rcnn_fpn.py',
    './_base_/datasets/coco_instance.py',
    './_base_/schedules/det_1x.py',
    './_base_/det_runtime.py',
]
pretrained = 'checkpoints/mambaout_tiny.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='MambaOut',
        arch='tiny',
        drop_path_rate=0.3,
        out_indices=(0, 1, 2, 3),
        with_cp=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 576]))

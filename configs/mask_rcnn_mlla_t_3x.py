# Mask R-CNN + FPN, MLLA-T, COCO, 3x (36 epochs) multi-scale; drop_path 0.3.
# Published: 48.8 box AP / 43.8 mask AP.
_base_ = ['./mask_rcnn_mlla_t.py', './_base_/schedules/det_3x.py']
model = dict(backbone=dict(drop_path_rate=0.3))

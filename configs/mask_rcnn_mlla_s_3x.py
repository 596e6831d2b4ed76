# Mask R-CNN + FPN, MLLA-S, COCO, 3x; drop_path 0.3. Published: 50.5 box AP / 44.9 mask AP.
_base_ = ['./mask_rcnn_mlla_s.py', './_base_/schedules/det_3x.py']
model = dict(backbone=dict(drop_path_rate=0.3))

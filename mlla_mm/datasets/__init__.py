"""Datasets of the project: the generators of the embedded demo datasets.

Importing this package is cheap (numpy only); OpenCV is imported when data is
generated, and mmdet/mmseg are never imported.
"""
from .demo_data import (DEMO_DET_CLASSES, DEMO_DET_PALETTE,
                        DEMO_SEG_ADE20K_INDICES, DEMO_SEG_CLASS_MEANING,
                        DEMO_SEG_CLASSES, DEMO_SEG_PALETTE, DEMO_TEXTURES,
                        generate_ade20k_semantic, generate_coco_instance)
from .demo_medseg import generate_isic_lesions
from .demo_pose import COCO_KEYPOINTS, COCO_SKELETON, generate_coco_pose

__all__ = [
    'DEMO_DET_CLASSES', 'DEMO_DET_PALETTE', 'DEMO_SEG_CLASSES',
    'DEMO_SEG_PALETTE', 'DEMO_SEG_ADE20K_INDICES', 'DEMO_SEG_CLASS_MEANING',
    'DEMO_TEXTURES', 'generate_coco_instance', 'generate_ade20k_semantic',
    'generate_isic_lesions', 'COCO_KEYPOINTS', 'COCO_SKELETON', 'generate_coco_pose'
]

"""Copies of the generated datasets with one sample of each kind of bad data."""
import json
import os
import os.path as osp
import shutil

import numpy as np
from PIL import Image

COCO_ANN = 'annotations/instances_train2017.json'


def corrupt_coco(src: str, dst: str) -> dict:
    """Copy a generated COCO dataset and break one training image per kind.

    Returns {kind: file name} of what was broken.
    """
    shutil.copytree(src, dst)
    images = osp.join(dst, 'train2017')
    broken = {'truncated JPEG': '000000000001.jpg', 'missing file': '000000000002.jpg',
              'grayscale image': '000000000003.jpg', 'degenerate polygon': '000000000004.jpg',
              'no annotations': '000000000005.jpg', 'unknown category': '000000000006.jpg'}
    path = osp.join(images, broken['truncated JPEG'])
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])
    os.remove(osp.join(images, broken['missing file']))
    path = osp.join(images, broken['grayscale image'])
    Image.open(path).convert('L').save(path, quality=95)

    with open(osp.join(dst, COCO_ANN)) as f:
        coco = json.load(f)
    ids = {img['file_name']: img['id'] for img in coco['images']}
    first = {}
    for ann in coco['annotations']:
        first.setdefault(ann['image_id'], ann)
    x, y, w, h = first[ids[broken['degenerate polygon']]]['bbox']
    first[ids[broken['degenerate polygon']]]['segmentation'] = [[x, y, x + w, y + h]]
    first[ids[broken['unknown category']]]['category_id'] = 99
    coco['annotations'] = [a for a in coco['annotations']
                           if a['image_id'] != ids[broken['no annotations']]]
    with open(osp.join(dst, COCO_ANN), 'w') as f:
        json.dump(coco, f)
    return broken


def corrupt_ade20k(src: str, dst: str) -> dict:
    """Copy a generated ADE20K-layout dataset; one label map gets a value (200) that is no
    ADE20K class id (1..150), so no class of any config."""
    shutil.copytree(src, dst)
    name = 'ADE_train_00000001.png'
    path = osp.join(dst, 'annotations', 'training', name)
    labels = np.array(Image.open(path))
    labels[:labels.shape[0] // 2] = 200  # top half: every training crop contains some
    Image.fromarray(labels).save(path)
    return {'label out of range': name}

"""Generator of the small COCO-keypoints demo dataset (human pose without downloads).

Each image is one of :mod:`~mlla_mm.datasets.demo_data`'s textured backgrounds with
one to four *figures* standing, walking or moving on it. A figure is a posed 3-D
skeleton of a person -- torso, neck, head, upper arms, forearms, hands, thighs,
shins, feet -- projected orthographically and painted part by part, far parts
first, as rounded limbs with a dark outline. Its 17 joints are the 17 COCO
keypoints, so the annotation is exact:

* the face (eyes, nose, mouth, ears) is drawn where it faces the camera and hair
  covers the top and back of the head, so a figure seen from the back or in profile
  looks like one -- the cue that tells the person's left from right, which is the
  person's own (a front-facing figure has its left side on the image's right);
* figures are rotated about the vertical (front, back, profile views), tilted in
  the image plane, leaning, with their own body proportions, sizes and clothing
  colours (sleeves, shorts, hair, shoes);
* figures overlap each other (nearer ones, whose feet are lower, are painted over
  the others) and sometimes stand behind an occluding board, and may be cut by the
  image border.

Visibility flags follow COCO: ``2`` = labelled and visible, ``1`` = labelled but
hidden (behind another part of the same figure, another figure or an occluder, or a
face point on the far side of the head), ``0`` = not labelled with ``(0, 0)``
(outside the image, or an eye / ear / nose on the back of the head, which COCO
annotators leave out). Keypoints are in pixel coordinates whose integers are
pixel centres (OpenCV's and mmpose's convention).

Layout (real COCO person keypoints; read unchanged by mmpose's ``CocoDataset`` and
``CocoMetric``)::

    <root>/annotations/person_keypoints_train2017.json
    <root>/annotations/person_keypoints_val2017.json
    <root>/train2017/000000000001.jpg ...
    <root>/val2017/000000000001.jpg ...
    <root>/person_detection_results/demo_val2017_detections_person.json

One category, ``person`` (id 1), with COCO's 17 ``keypoints`` names and 19-link
``skeleton``. Each annotation has ``keypoints`` (17 x (x, y, v)),
``num_keypoints`` (labelled ones), ``bbox`` (``[x, y, w, h]`` of the figure's
visible pixels), ``area`` (their count, the OKS scale), ``segmentation``
(polygons around them) and ``iscrowd`` 0. The detection file lists, for the
validation images, one simulated person detection per annotated figure (its box
jittered by about 5 % of its size, a score in [0.5, 1]) in COCO's results format,
for testing a top-down model on detected instead of ground-truth boxes.

Generation is deterministic and stamped like the other demo sets (same arguments,
byte-identical files; see :mod:`mlla_mm.datasets.demo_data`). Command line:
``python tools/dataset_converters/generate_demo_data.py --kind pose``.
"""
import json
import math
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .demo_data import (_check_pair, _hsv, _image_rng, _mask_to_polygons,
                        _prepare_root, _render_background, _size_stats,
                        _texture, _write_jpeg, _write_stamp)

# Bump when the renderer changes so that stale stamped outputs are regenerated.
POSE_GENERATOR_VERSION = 1

#: The 17 COCO keypoints, in COCO's order.
COCO_KEYPOINTS: Tuple[str, ...] = (
    'nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear', 'left_shoulder',
    'right_shoulder', 'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist',
    'left_hip', 'right_hip', 'left_knee', 'right_knee', 'left_ankle',
    'right_ankle')
#: COCO's person skeleton: pairs of 1-based keypoint indices, as in the
#: ``person`` category of ``person_keypoints_*.json``.
COCO_SKELETON: Tuple[Tuple[int, int], ...] = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7),
    (6, 8), (7, 9), (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5),
    (4, 6), (5, 7))
#: Where the detections for top-down testing are written, relative to the root.
DETECTIONS_FILE = 'person_detection_results/demo_val2017_detections_person.json'

_K = {name: i for i, name in enumerate(COCO_KEYPOINTS)}
_MIN_LABELLED = 6          # keypoints with v > 0 a figure must keep
_MIN_VISIBLE = 4           # ... of which visible (v = 2)
_MIN_VISIBLE_FRACTION = 0.3  # of its own pixels, after occlusion
_PLACEMENT_TRIES = 25
_HEAD_RADIUS = 0.062       # all body sizes in units of the figure's height
# Face points by depth behind the head's centre plane (x head radius): drawn and
# visible above the first threshold, labelled but hidden down to the second, and left
# unlabelled (the back of the head) below it.
_FACE_DRAWN = dict(eye=0.05, nose=0.05, ear=-0.3)
_FACE_LABELLED = dict(eye=-0.35, nose=-0.35, ear=-0.6)


# ----------------------------------------------------------------------------
# the figure: a posed 3-D skeleton (body frame: x = the person's left, y = down,
# z = forward; camera frame: X right, Y down, Z towards the viewer)
# ----------------------------------------------------------------------------
def _rot_x(a: float) -> np.ndarray:   # positive: a down-pointing limb swings forward
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_y(a: float) -> np.ndarray:   # about the vertical axis
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rot_z(a: float) -> np.ndarray:   # in the frontal (image) plane
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _deg(rng: np.random.Generator, lo: float, hi: float) -> float:
    return math.radians(rng.uniform(lo, hi))


def _sample_pose(rng: np.random.Generator) -> dict:
    """Joint angles (radians) of one of three activities; sides independent."""
    mode = rng.choice(3, p=(0.4, 0.3, 0.3))   # standing, walking, anything
    pose = dict(mode=('stand', 'walk', 'active')[mode])
    if mode == 0:
        pose['lean'] = _deg(rng, -5, 10)
        arms = [(_deg(rng, 5, 35), _deg(rng, -20, 30), _deg(rng, 0, 50))
                for _ in range(2)]
        legs = [(_deg(rng, 0, 12), _deg(rng, -8, 12), _deg(rng, 0, 15))
                for _ in range(2)]
    elif mode == 1:
        pose['lean'] = _deg(rng, -3, 12)
        swing = _deg(rng, 12, 35) * (1 if rng.random() < 0.5 else -1)
        arms = [(_deg(rng, 3, 18), -s * 0.8 * swing, _deg(rng, 10, 50))
                for s in (1, -1)]
        legs = [(_deg(rng, 0, 8), s * swing, _deg(rng, 0, 35) if s * swing < 0
                 else _deg(rng, 0, 15)) for s in (1, -1)]
    else:
        pose['lean'] = _deg(rng, -10, 40)
        arms = [(_deg(rng, -10, 170), _deg(rng, -60, 150), _deg(rng, 0, 140))
                for _ in range(2)]
        legs = [(_deg(rng, -5, 45), _deg(rng, -30, 100), _deg(rng, 0, 120))
                for _ in range(2)]
    pose['arms'] = arms                     # (abduction, flexion, elbow) left, right
    pose['twists'] = [_deg(rng, -50, 50) for _ in range(2)]
    pose['legs'] = legs                     # (abduction, flexion, knee) left, right
    pose['side_bend'] = math.radians(float(np.clip(rng.normal(0, 5), -15, 15)))
    pose['head'] = (math.radians(float(np.clip(rng.normal(0, 25), -60, 60))),
                    _deg(rng, -15, 20))    # yaw, pitch relative to the torso
    return pose


def _sample_body(rng: np.random.Generator) -> dict:
    """Proportions (fractions of the height, varied by up to ~10 %)."""
    def vary(value):
        return value * rng.uniform(0.9, 1.1)
    return dict(torso=vary(0.30), shoulder=vary(0.115), hip=vary(0.085),
                upper_arm=vary(0.165), forearm=vary(0.145), thigh=vary(0.245),
                shin=vary(0.24), neck=vary(0.095), girth=rng.uniform(0.85, 1.2))


def _skeleton(pose: dict, body: dict) -> Tuple[Dict[str, np.ndarray], dict]:
    """3-D points (body frame, unit height, pelvis at the origin) of the joints
    and the drawing helpers (hands, feet, torso outline, head frame)."""
    torso_r = _rot_z(pose['side_bend']) @ _rot_x(-pose['lean'])
    neck = torso_r @ np.array([0.0, -body['torso'], 0.0])
    head_r = torso_r @ _rot_y(pose['head'][0]) @ _rot_x(pose['head'][1])
    head = neck + head_r @ np.array([0.0, -body['neck'], 0.0])
    p: Dict[str, np.ndarray] = dict(neck=neck, head=head)
    r = _HEAD_RADIUS
    eye_z = math.sqrt(r * r - 0.026 ** 2 - 0.010 ** 2)
    face = dict(nose=(0.0, 0.012, 1.1 * r), left_eye=(0.026, -0.010, eye_z),
                right_eye=(-0.026, -0.010, eye_z), left_ear=(0.98 * r, 0.004, -0.008),
                right_ear=(-0.98 * r, 0.004, -0.008), mouth=(0.0, 0.034, 0.85 * r))
    for name, offset in face.items():
        p[name] = head + head_r @ np.array(offset)
    for side, s in (('left', 1), ('right', -1)):
        shoulder = neck + torso_r @ np.array([s * body['shoulder'], 0.025, 0.0])
        abd, flex, elbow = pose['arms'][0 if s > 0 else 1]
        arm_r = torso_r @ _rot_z(-s * abd) @ _rot_x(flex)
        p[f'{side}_shoulder'] = shoulder
        p[f'{side}_elbow'] = shoulder + arm_r @ np.array([0.0, body['upper_arm'], 0.0])
        fore_r = arm_r @ _rot_y(s * pose['twists'][0 if s > 0 else 1]) @ _rot_x(elbow)
        p[f'{side}_wrist'] = p[f'{side}_elbow'] + fore_r @ np.array(
            [0.0, body['forearm'], 0.0])
        p[f'{side}_hand'] = p[f'{side}_wrist'] + fore_r @ np.array([0.0, 0.035, 0.0])
        abd, flex, knee = pose['legs'][0 if s > 0 else 1]
        hip = np.array([s * body['hip'], 0.0, 0.0])
        leg_r = _rot_z(-s * abd) @ _rot_x(flex)
        p[f'{side}_hip'] = hip
        p[f'{side}_knee'] = hip + leg_r @ np.array([0.0, body['thigh'], 0.0])
        shin_r = leg_r @ _rot_x(-knee)
        p[f'{side}_ankle'] = p[f'{side}_knee'] + shin_r @ np.array([0.0, body['shin'], 0.0])
        p[f'{side}_toe'] = p[f'{side}_ankle'] + shin_r @ np.array([0.0, 0.02, 0.075])
    # torso outline: shoulders, hips, and chest / belly / back points for depth
    g = body['girth']
    outline = [p['left_shoulder'], p['right_shoulder'], p['left_hip'], p['right_hip']]
    for y, z in ((-0.2, 0.06), (-0.2, -0.06), (-0.05, 0.055), (-0.05, -0.05)):
        outline.append(torso_r @ np.array([0.0, y * body['torso'] / 0.30, z * g]))
    return p, dict(head_r=head_r, torso_outline=np.stack(outline))


# ----------------------------------------------------------------------------
# painting
# ----------------------------------------------------------------------------
# part name, its points, radius (x height), colour key; own keypoints below
_LIMBS = (('upper_arm', ('shoulder', 'elbow'), 0.030, 'shirt'),
          ('forearm', ('elbow', 'wrist'), 0.024, 'sleeve'),
          ('hand', ('hand',), 0.022, 'skin'),
          ('thigh', ('hip', 'knee'), 0.042, 'trousers'),
          ('shin', ('knee', 'ankle'), 0.033, 'legs'),
          ('foot', ('ankle', 'toe'), 0.020, 'shoes'))
_PART_NAMES = (('torso', 'neck', 'head') +
               tuple(f'{side}_{limb[0]}' for side in ('left', 'right') for limb in _LIMBS))
_PART_ID = {name: i for i, name in enumerate(_PART_NAMES)}


def _own_parts(keypoint: str) -> Tuple[str, ...]:
    """Parts a keypoint lies on (besides the torso, see :func:`_visibility`)."""
    if '_' not in keypoint or keypoint.endswith(('_eye', '_ear')):
        return ('head',)
    side, joint = keypoint.split('_')
    limbs = [name for name, points, _, _ in _LIMBS
             if joint in points or (joint, name) == ('wrist', 'hand')]
    return tuple(f'{side}_{name}' for name in limbs)


def _face_kind(keypoint: str) -> str:
    return keypoint.split('_')[-1]   # nose, eye, ear


_OWN_PART_IDS = [np.array([_PART_ID[p] for p in _own_parts(k)]) for k in COCO_KEYPOINTS]


def _sample_colours(rng: np.random.Generator) -> dict:
    skin = _hsv(rng.uniform(15, 35), rng.uniform(0.25, 0.6), rng.uniform(0.4, 0.95))
    shirt = _hsv(rng.uniform(0, 360), rng.uniform(0.35, 0.95), rng.uniform(0.3, 0.95))
    trousers = _hsv(rng.uniform(0, 360), rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.75))
    hair = _hsv(rng.uniform(20, 45), rng.uniform(0.3, 0.8),
                rng.choice([0.12, 0.3, 0.55, 0.8]) * rng.uniform(0.8, 1.1))
    return dict(skin=skin, shirt=shirt, trousers=trousers, hair=hair,
                sleeve=shirt if rng.random() < 0.5 else skin,
                legs=trousers if rng.random() < 0.7 else skin,
                shoes=_hsv(rng.uniform(0, 360), rng.uniform(0, 0.5), rng.uniform(0.1, 0.4)),
                hair_top=rng.uniform(-0.55, -0.05) if rng.random() < 0.9 else 2.0,
                hair_back=rng.uniform(-0.45, 0.15))


class _Canvas:
    """The image being painted and, per pixel, which part of which figure (or an
    occluder) is on top: ``owner = 32 * (figure + 1) + part``, 1 = occluder."""

    def __init__(self, image: np.ndarray):
        self.image = image
        self.owner = np.zeros(image.shape[:2], np.int32)

    def copy(self) -> '_Canvas':
        other = _Canvas.__new__(_Canvas)
        other.image, other.owner = self.image.copy(), self.owner.copy()
        return other

    def window(self, points: np.ndarray, pad: float):
        h, w = self.owner.shape
        x0 = max(int(math.floor(points[:, 0].min() - pad)) - 1, 0)
        y0 = max(int(math.floor(points[:, 1].min() - pad)) - 1, 0)
        x1 = min(int(math.ceil(points[:, 0].max() + pad)) + 2, w)
        y1 = min(int(math.ceil(points[:, 1].max() + pad)) + 2, h)
        if x1 <= x0 or y1 <= y0:
            return None
        return (slice(y0, y1), slice(x0, x1)), np.array([x0, y0], np.float64)

    def paint(self, win, mask: np.ndarray, colour: np.ndarray, owner: int,
              rng: np.random.Generator) -> None:
        """Paint ``mask`` (in window ``win``) in ``colour``, gently shaded across, with a
        darker outline, and make ``owner`` the top of its pixels."""
        import cv2
        if not mask.any():
            return
        ys, xs = np.nonzero(mask)
        theta = rng.uniform(0, 2 * math.pi)
        u = (xs * math.cos(theta) + ys * math.sin(theta)).astype(np.float32)
        u = (u - u.mean()) / max(float(np.ptp(u)), 1.0)
        shade = 1.0 + rng.uniform(0.1, 0.3) * u
        pixels = colour[None] * shade[:, None]
        inner = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8),
                          borderType=cv2.BORDER_CONSTANT, borderValue=0)
        pixels[~inner[ys, xs].astype(bool)] *= 0.5   # outline: overlapping limbs stay apart
        self.image[win][ys, xs] = pixels
        self.owner[win][ys, xs] = owner


def _draw_mask(shape: Tuple[int, int], kind: str, points: np.ndarray,
               radius: float) -> np.ndarray:
    """A part's mask in its window: a round-ended thick segment (``capsule``), a
    disc, or the convex hull of ``points`` grown by ``radius`` (``hull``)."""
    import cv2
    mask = np.zeros(shape, np.uint8)
    fixed = np.round(points * 16).astype(np.int32)    # 4 fractional bits
    thickness = max(int(round(2 * radius)), 1)
    if kind == 'disc':
        cv2.circle(mask, tuple(int(v) for v in fixed[0]), int(round(radius * 16)), 1, -1,
                   lineType=cv2.LINE_8, shift=4)
    elif kind == 'capsule':
        cv2.line(mask, tuple(int(v) for v in fixed[0]), tuple(int(v) for v in fixed[1]), 1,
                 thickness, lineType=cv2.LINE_8, shift=4)
    else:
        hull = cv2.convexHull(fixed)
        cv2.fillConvexPoly(mask, hull, 1, lineType=cv2.LINE_8, shift=4)
        cv2.polylines(mask, [hull], True, 1, thickness, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


def _paint_head(canvas: _Canvas, owner: int, centre: np.ndarray, radius: float,
                to_camera: np.ndarray, face: Dict[str, np.ndarray], colours: dict,
                rng: np.random.Generator) -> None:
    """Skin sphere with hair on top and back, the face where it faces the camera."""
    import cv2
    found = canvas.window(centre[None, :2], radius + 1)
    if found is None:
        return
    win, origin = found
    shape = canvas.owner[win].shape
    mask = _draw_mask(shape, 'disc', centre[None, :2] - origin, radius)
    canvas.paint(win, mask, colours['skin'], owner, rng)
    # hair: sphere points (head frame) above hair_top or behind hair_back
    ys, xs = np.nonzero(mask)
    dx = xs + origin[0] - centre[0]
    dy = ys + origin[1] - centre[1]
    dz = np.sqrt(np.clip(radius ** 2 - dx ** 2 - dy ** 2, 0, None))
    local = np.stack([dx, dy, dz], 1) @ to_camera / radius   # rows: to_camera^T @ v
    hair = (local[:, 1] < colours['hair_top']) | (local[:, 2] < colours['hair_back'])
    if hair.any():
        canvas.image[win][ys[hair], xs[hair]] = colours['hair'] * rng.uniform(0.9, 1.1)
    # face features where they face the camera
    dark = np.array([25.0, 20.0, 20.0])
    for name, size, colour in (('left_eye', 0.16, dark), ('right_eye', 0.16, dark),
                               ('nose', 0.17, colours['skin'] * 0.7),
                               ('left_ear', 0.24, colours['skin'] * 0.8),
                               ('right_ear', 0.24, colours['skin'] * 0.8)):
        point = face[name]
        if (point[2] - centre[2]) / radius <= _FACE_DRAWN[_face_kind(name)]:
            continue
        r = max(size * radius, 0.8)
        cv2.circle(canvas.image[win], tuple(int(v) for v in np.round(
            (point[:2] - origin) * 16)), int(round(r * 16)), colour.tolist(), -1,
            lineType=cv2.LINE_AA, shift=4)
    mouth = face['mouth']
    if (mouth[2] - centre[2]) / radius > 0.1:
        half = np.array([0.22 * radius, 0.0])
        a, b = (mouth[:2] - origin - half), (mouth[:2] - origin + half)
        cv2.line(canvas.image[win], tuple(int(v) for v in np.round(a * 16)),
                 tuple(int(v) for v in np.round(b * 16)), (120.0, 40.0, 40.0),
                 max(int(round(0.08 * radius)), 1), lineType=cv2.LINE_AA, shift=4)


def _place_figure(rng: np.random.Generator, width: int, height: int,
                  height_range: Tuple[int, int]) -> dict:
    """A posed, oriented, scaled and placed figure: 2-D/3-D camera points."""
    pose, body = _sample_pose(rng), _sample_body(rng)
    points, extra = _skeleton(pose, body)
    view = rng.choice(3, p=(0.5, 0.2, 0.3))
    yaw = math.radians(rng.normal(0, 25) + (0.0, 180.0, 90.0 * rng.choice([-1, 1]))[view])
    roll = (rng.normal(0, 8) if rng.random() < 0.9 else rng.uniform(-90, 90))
    camera = (_rot_z(math.radians(float(np.clip(roll, -90, 90)))) @
              _rot_x(_deg(rng, -10, 10)) @ _rot_y(yaw))
    size = math.exp(rng.uniform(math.log(height_range[0]), math.log(height_range[1])))
    names = list(points)
    cam = np.stack([points[n] for n in names]) @ camera.T * size
    outline = extra['torso_outline'] @ camera.T * size
    # place: the whole figure inside the image, or (20 %) partly outside it
    lo, hi = cam[:, :2].min(0), cam[:, :2].max(0)
    span = hi - lo
    slack = 0.25 * span if rng.random() < 0.2 else np.zeros(2)
    low = -lo - slack + 0.03 * size
    high = np.array([width, height], np.float64) - hi + slack - 0.03 * size
    shift = rng.uniform(np.minimum(low, high), np.maximum(low, high))
    cam[:, :2] += shift
    outline[:, :2] += shift
    return dict(points=dict(zip(names, cam)), outline=outline, size=size,
                to_camera=camera @ extra['head_r'], colours=_sample_colours(rng),
                view=('front', 'back', 'side')[view], mode=pose['mode'],
                girth=body['girth'], feet=float(hi[1] + shift[1]))


def _paint_figure(canvas: _Canvas, figure: dict, index: int,
                  rng: np.random.Generator) -> np.ndarray:
    """Paint a figure far parts first; returns its own (amodal) mask."""
    p, size, colours = figure['points'], figure['size'], figure['colours']
    parts = [('torso', 'hull', figure['outline'], 0.03 * figure['girth'], 'shirt'),
             ('neck', 'capsule', np.stack([p['neck'], p['head']]), 0.022, 'skin')]
    for side in ('left', 'right'):
        for name, joints, radius, colour in _LIMBS:
            pts = np.stack([p[f'{side}_{j}'] for j in joints])
            kind = 'disc' if len(joints) == 1 else 'capsule'
            parts.append((f'{side}_{name}', kind, pts, radius, colour))
    depth = {name: float(pts[:, 2].mean()) for name, _, pts, _, _ in parts}
    depth['head'] = float(p['head'][2])
    order = sorted(list(depth), key=lambda n: depth[n])
    specs = {name: (kind, pts, r, c) for name, kind, pts, r, c in parts}
    amodal = np.zeros(canvas.owner.shape, bool)
    for name in order:
        owner = 32 * (index + 1) + _PART_ID[name]
        if name == 'head':
            radius = _HEAD_RADIUS * size
            face = {k: p[k] for k in ('nose', 'left_eye', 'right_eye', 'left_ear',
                                      'right_ear', 'mouth')}
            _paint_head(canvas, owner, p['head'], radius, figure['to_camera'], face,
                        colours, rng)
            found = canvas.window(p['head'][None, :2], radius + 1)
            if found is not None:
                win, origin = found
                amodal[win] |= _draw_mask(canvas.owner[win].shape, 'disc',
                                          p['head'][None, :2] - origin, radius)
            continue
        kind, pts, radius, colour = specs[name]
        radius = radius * size
        found = canvas.window(pts[:, :2], radius + 1)
        if found is None:
            continue
        win, origin = found
        mask = _draw_mask(canvas.owner[win].shape, kind, pts[:, :2] - origin, radius)
        canvas.paint(win, mask, colours[colour], owner, rng)
        amodal[win] |= mask
    return amodal


def _visibility(canvas: _Canvas, figure: dict, index: int) -> np.ndarray:
    """(17, 3) COCO keypoints ``x, y, v`` of a painted figure on ``canvas``."""
    h, w = canvas.owner.shape
    p = figure['points']
    torso_depth = float(figure['outline'][:, 2].mean())
    head_radius = _HEAD_RADIUS * figure['size']
    out = np.zeros((len(COCO_KEYPOINTS), 3))
    for k, name in enumerate(COCO_KEYPOINTS):
        x, y, z = p[name]
        if not (0 <= x < w - 0.5 and 0 <= y < h - 0.5):
            continue                                  # outside: not labelled
        hidden = False
        if k <= _K['right_ear']:
            depth = (z - p['head'][2]) / head_radius
            if depth < _FACE_LABELLED[_face_kind(name)]:
                continue                              # back of the head: not labelled
            hidden = depth <= _FACE_DRAWN[_face_kind(name)]
        own = _OWN_PART_IDS[k] + 32 * (index + 1)
        # the torso counts unless the joint is clearly behind it (a turned figure)
        if name.endswith(('shoulder', 'hip')) and z >= torso_depth - 0.05 * figure['size']:
            own = np.append(own, 32 * (index + 1) + _PART_ID['torso'])
        xi, yi = int(round(x)), int(round(y))
        around = canvas.owner[max(yi - 1, 0):yi + 2, max(xi - 1, 0):xi + 2]
        visible = not hidden and bool(np.isin(around, own).any())
        out[k] = (round(float(x), 2), round(float(y), 2), 2 if visible else 1)
    return out


def _acceptable(canvas: _Canvas, figures: List[dict], amodal: List[np.ndarray]
                ) -> Optional[List[np.ndarray]]:
    """Every figure's keypoints if each keeps enough of itself, else None."""
    keypoints = []
    for i, figure in enumerate(figures):
        kpts = _visibility(canvas, figure, i)
        visible_pixels = int((canvas.owner // 32 == i + 1).sum())
        if ((kpts[:, 2] > 0).sum() < _MIN_LABELLED or (kpts[:, 2] == 2).sum() < _MIN_VISIBLE
                or visible_pixels < _MIN_VISIBLE_FRACTION * max(int(amodal[i].sum()), 1)):
            return None
        keypoints.append(kpts)
    return keypoints


def _paint_occluder(canvas: _Canvas, figure: dict, rng: np.random.Generator) -> None:
    """A textured board in front of part of ``figure``."""
    import cv2
    p = figure['points']
    target = p[('left_knee', 'right_knee', 'left_hip', 'left_wrist',
                'right_elbow')[int(rng.integers(5))]][:2]
    size = figure['size']
    half = np.array([rng.uniform(0.12, 0.4), rng.uniform(0.08, 0.3)]) * size
    angle = _deg(rng, -20, 20)
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    corners = corners @ rot.T + target + rng.normal(0, 0.05 * size, 2)
    found = canvas.window(corners, 1)
    if found is None:
        return
    win, origin = found
    mask = np.zeros(canvas.owner[win].shape, np.uint8)
    cv2.fillConvexPoly(mask, np.round((corners - origin) * 16).astype(np.int32), 1,
                       lineType=cv2.LINE_8, shift=4)
    mask = mask.astype(bool)
    ys, xs = np.nonzero(mask)
    kind = ('gradient', 'checkerboard', 'noise', 'stripes')[int(rng.integers(4))]
    noise = rng.random(len(xs), np.float32)
    c1, c2, t = _texture(kind, rng, xs.astype(np.float32), ys.astype(np.float32), noise)
    canvas.image[win][ys, xs] = c1 + t[:, None] * (c2 - c1)
    canvas.owner[win][ys, xs] = 1


def _render_pose_scene(rng: np.random.Generator, width: int, height: int,
                       persons: Tuple[int, int], person_height: Tuple[int, int]):
    """One image: ``(image RGB uint8, figures, keypoints, visible masks, amodal masks,
    occluded_by_board)``."""
    background, _ = _render_background(rng, width, height)
    canvas = _Canvas(background)
    count = int(rng.integers(persons[0], persons[1] + 1))
    # nearer figures (feet lower in the image) are painted last
    candidates = []
    for _ in range(count):
        candidates.append(rng.integers(2 ** 31))
    figures: List[dict] = []
    amodal: List[np.ndarray] = []
    keypoints: List[np.ndarray] = []
    for seed in candidates:
        sub = np.random.default_rng(int(seed))
        for _ in range(_PLACEMENT_TRIES):
            figure = _place_figure(sub, width, height, person_height)
            # painting order follows depth: insert before the figures nearer than it
            order = sorted(figures + [figure], key=lambda f: f['feet'])
            trial = _Canvas(background.copy())
            masks = [_paint_figure(trial, f, i, sub) for i, f in enumerate(order)]
            found = _acceptable(trial, order, masks)
            if found is not None:
                figures, amodal, keypoints, canvas = order, masks, found, trial
                break
    board = False
    if figures and rng.random() < 0.35:
        for _ in range(8):
            trial = canvas.copy()
            _paint_occluder(trial, figures[int(rng.integers(len(figures)))], rng)
            found = _acceptable(trial, figures, amodal)
            if found is not None:
                canvas, keypoints, board = trial, found, True
                break
    image = canvas.image + rng.random(canvas.image.shape, np.float32) * 10.0 - 5.0
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    visible = [canvas.owner // 32 == i + 1 for i in range(len(figures))]
    return image, figures, keypoints, visible, amodal, board


# ----------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------
def _cut_by_border(figure: dict, width: int, height: int) -> bool:
    xy = np.stack([figure['points'][k][:2] for k in COCO_KEYPOINTS])
    return bool(((xy < 0) | (xy >= (width - 0.5, height - 0.5))).any())


def _check_pose_args(num_train, num_val, image_size, persons_per_image, person_height):
    for name, n in (('num_train', num_train), ('num_val', num_val)):
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f'{name} must be a positive integer, got {n!r}')
    width, height = _check_pair('image_size (width, height)', image_size, 64, False)
    persons = _check_pair('persons_per_image (min, max)', persons_per_image, 1, True)
    heights = _check_pair('person_height (min, max) in pixels', person_height, 32, True)
    if heights[1] > min(width, height):
        raise ValueError(f'person_height max {heights[1]} exceeds the short side of '
                         f'image_size {image_size}; lower person_height or enlarge the image')
    return (width, height), persons, heights


def _detections(rng: np.random.Generator, annotations: Sequence[dict], width: int,
                height: int) -> List[dict]:
    """Simulated person detections: every annotated box, jittered, with a score."""
    results = []
    for ann in annotations:
        x, y, w, h = ann['bbox']
        jitter = rng.normal(0, 0.05, 4) * np.array([w, h, w, h])
        x0, y0 = max(x + jitter[0], 0.0), max(y + jitter[1], 0.0)
        x1 = min(x + w + jitter[2], float(width))
        y1 = min(y + h + jitter[3], float(height))
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        results.append(dict(image_id=ann['image_id'], category_id=1,
                            bbox=[round(float(v), 2) for v in (x0, y0, x1 - x0, y1 - y0)],
                            score=round(float(rng.uniform(0.5, 1.0)), 4)))
    return results


def generate_coco_pose(root: str = 'data/demo_coco_pose',
                       num_train: int = 200,
                       num_val: int = 50,
                       image_size: Tuple[int, int] = (320, 256),
                       seed: int = 0,
                       persons_per_image: Tuple[int, int] = (1, 4),
                       person_height: Tuple[int, int] = (80, 220),
                       overwrite: bool = False) -> dict:
    """Write the demo COCO-keypoints dataset (see the module docstring).

    Args:
        root (str): Output directory (the mmpose ``data_root``).
        num_train (int): Images in ``train2017``.
        num_val (int): Images in ``val2017``.
        image_size (tuple[int, int]): ``(width, height)`` of every image.
        seed (int): Seed; the same arguments give byte-identical files.
        persons_per_image (tuple[int, int]): Inclusive range of the number of figures
            per image (a figure that finds no place where it and the others stay
            recognisable after 25 tries is left out, so a few images have fewer).
        person_height (tuple[int, int]): Range of the figures' standing height in
            pixels, sampled log-uniformly (their boxes depend on the pose).
        overwrite (bool): Regenerate even if ``root`` holds this output, and
            replace the generator's paths in a directory it did not write.

    Returns:
        dict: Summary: ``root``, ``generated`` (False when an identical output was
        found), ``seconds``, and per split the number of images and persons, persons
        per image, keypoints by visibility flag, views and activities of the figures,
        persons behind an occluder or cut by the border, and box sizes.
    """
    (width, height), persons, heights = _check_pose_args(
        num_train, num_val, image_size, persons_per_image, person_height)
    params = dict(kind='coco_pose', version=POSE_GENERATOR_VERSION,
                  num_train=int(num_train), num_val=int(num_val),
                  image_size=[width, height], seed=int(seed),
                  persons_per_image=list(persons), person_height=list(heights))
    own = ['annotations/person_keypoints_train2017.json',
           'annotations/person_keypoints_val2017.json', 'train2017', 'val2017',
           'person_detection_results']
    start = time.perf_counter()
    found = _prepare_root(root, params, own, overwrite)
    if found is not None:
        return dict(found, root=root, generated=False,
                    seconds=round(time.perf_counter() - start, 2))
    for sub in ('annotations', 'person_detection_results'):
        os.makedirs(osp.join(root, sub), exist_ok=True)
    category = dict(id=1, name='person', supercategory='person',
                    keypoints=list(COCO_KEYPOINTS),
                    skeleton=[list(link) for link in COCO_SKELETON])
    summary = dict(kind='coco_pose', keypoints=list(COCO_KEYPOINTS),
                   image_size=[width, height], seed=int(seed), splits={})
    # seed streams apart from the instance (0, 1) and semantic (2, 3) datasets
    for split_id, (split, count) in enumerate((('train2017', num_train),
                                               ('val2017', num_val)), start=4):
        os.makedirs(osp.join(root, split), exist_ok=True)
        images, annotations = [], []
        per_image, flags = [], np.zeros(3, np.int64)
        views: Dict[str, int] = {}
        modes: Dict[str, int] = {}
        boards = truncated = 0
        box_sizes = []
        for index in range(count):
            image_id = index + 1
            rng = _image_rng(seed, split_id, index)
            image, figures, keypoints, visible, amodal, board = _render_pose_scene(
                rng, width, height, persons, heights)
            file_name = f'{image_id:012d}.jpg'
            _write_jpeg(osp.join(root, split, file_name), image)
            images.append(dict(id=image_id, file_name=file_name, width=width,
                               height=height))
            for figure, kpts, mask in zip(figures, keypoints, visible):
                rows = np.flatnonzero(mask.any(axis=1))
                cols = np.flatnonzero(mask.any(axis=0))
                x0, y0 = int(cols[0]), int(rows[0])
                bw, bh = int(cols[-1]) - x0 + 1, int(rows[-1]) - y0 + 1
                annotations.append(dict(
                    id=len(annotations) + 1, image_id=image_id, category_id=1,
                    keypoints=[float(v) if i % 3 < 2 else int(v)
                               for i, v in enumerate(kpts.reshape(-1))],
                    num_keypoints=int((kpts[:, 2] > 0).sum()),
                    bbox=[float(x0), float(y0), float(bw), float(bh)],
                    area=float(mask.sum()), segmentation=_mask_to_polygons(mask),
                    iscrowd=0))
                flags += np.bincount(kpts[:, 2].astype(int), minlength=3)
                views[figure['view']] = views.get(figure['view'], 0) + 1
                modes[figure['mode']] = modes.get(figure['mode'], 0) + 1
                truncated += _cut_by_border(figure, width, height)
                box_sizes.append(math.sqrt(bw * bh))
            boards += board
            per_image.append(len(figures))
        coco = dict(
            info=dict(description='mlla-mm demo figures (person keypoints)',
                      version=str(POSE_GENERATOR_VERSION), year=2024,
                      contributor='mlla_mm.datasets.demo_pose'),
            licenses=[], images=images, annotations=annotations, categories=[category])
        with open(osp.join(root, 'annotations', f'person_keypoints_{split}.json'), 'w') as f:
            json.dump(coco, f, separators=(',', ':'))
        if split == 'val2017':
            dets = _detections(np.random.default_rng([int(seed), 6]), annotations,
                               width, height)
            with open(osp.join(root, DETECTIONS_FILE), 'w') as f:
                json.dump(dets, f, separators=(',', ':'))
        summary['splits'][split] = dict(
            images=count, persons=len(annotations),
            persons_per_image=dict(
                mean=round(float(np.mean(per_image)), 2),
                histogram={str(n): per_image.count(n) for n in sorted(set(per_image))}),
            keypoints=dict(visible=int(flags[2]), occluded=int(flags[1]),
                           unlabelled=int(flags[0])),
            views=dict(sorted(views.items())), activities=dict(sorted(modes.items())),
            images_with_occluder=boards, persons_cut_by_border=truncated,
            sqrt_box_area_px=_size_stats(box_sizes))
    _write_stamp(root, params, summary)
    return dict(summary, root=root, generated=True,
                seconds=round(time.perf_counter() - start, 2))

"""Which files and folders a dataset config needs, checked before anything is built.

``tools/train.py`` and ``tools/test.py`` call :func:`missing_paths` right after the config is
loaded: a dataset that is not there is then named in one message (:func:`missing_data_message`)
instead of a ``FileNotFoundError`` deep in pycocotools after the model is built.

:data:`DATASET_PATHS` says, per dataset type, which config keys name a file and which a
folder; a dataset type of a new task adds one row. Paths are joined with the dataset's
``data_root`` as mmengine's ``BaseDataset`` joins them, except the keys a row lists as read as
written (mmpose's ``bbox_file``); a key that is not set is not checked (whether it is required
is the dataset's business), and URLs are not checked. Types not in the table get their
``ann_file`` checked. A row keyed ``scope.Type`` is that codebase's class (the type named so
in a config, or by a config whose ``default_scope`` is that scope): mmpose's ``CocoDataset``
is not mmdet's. Evaluators' ``ann_file`` (``CocoMetric``) is a path of its own, not joined
with any root.

Pure Python: no mmengine/mmdet/mmseg import.
"""
import os.path as osp
from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple


@dataclass(frozen=True)
class DatasetPaths:
    """Config keys (dotted: ``'data_prefix.img'``) holding a file / a folder under
    ``data_root``, and files the dataset reads as written (not under ``data_root``)."""
    files: Tuple[str, ...] = ('ann_file', )
    folders: Tuple[str, ...] = ()
    files_as_written: Tuple[str, ...] = ()


#: dataset type (as in configs, scope prefix optional) -> the paths its config names
DATASET_PATHS: Dict[str, DatasetPaths] = {
    # mmdet COCO instances: annotations/instances_*.json and the image folder
    'CocoDataset': DatasetPaths(folders=('data_prefix.img', )),
    # mmseg ADE20K: images/<split> and annotations/<split> (ann_file: optional split list)
    'ADE20KDataset': DatasetPaths(folders=('data_prefix.img_path', 'data_prefix.seg_map_path')),
    # mmpretrain ImageNet: data_root/<split> (or data_prefix), meta/<split>.txt if named
    'ImageNet': DatasetPaths(folders=('split', 'data_prefix', 'data_prefix.img_path')),
    # mmpose COCO keypoints (top-down): annotations/person_keypoints_*.json, the image folder
    # and, testing on detected boxes, the person detections (read as written)
    'mmpose.CocoDataset': DatasetPaths(folders=('data_prefix.img', ),
                                       files_as_written=('bbox_file', )),
    # ISIC lesions (mlla_mm/datasets/isic.py): {train,val}/images and {train,val}/masks
    'ISICDataset': DatasetPaths(folders=('data_prefix.img_path', 'data_prefix.seg_map_path')),
}


@dataclass
class MissingPath:
    path: str
    kind: str   # 'file' or 'folder'
    # what names it: (key, loader, type), e.g. ('ann_file', 'train_dataloader', 'CocoDataset')
    uses: List[Tuple[str, str, str]]

    def __str__(self) -> str:
        owners: Dict[Tuple[str, str], List[str]] = {}
        for key, owner, type_name in self.uses:
            owners.setdefault((key, type_name), []).append(owner)
        uses = '; '.join(f'{key} of {" and ".join(o)}, {type_name}'
                         for (key, type_name), o in owners.items())
        return f'{self.path}: no such {self.kind} ({uses})'


def dataset_leaves(dataset_cfg) -> Iterator[dict]:
    """The real datasets inside wrappers (RepeatDataset, ConcatDataset, ...)."""
    if not isinstance(dataset_cfg, dict):
        return
    if 'datasets' in dataset_cfg:
        for sub in dataset_cfg['datasets']:
            yield from dataset_leaves(sub)
    elif 'dataset' in dataset_cfg and not any(
            k in dataset_cfg for k in ('data_root', 'ann_file', 'data_prefix')):
        yield from dataset_leaves(dataset_cfg['dataset'])
    else:
        yield dataset_cfg


def paths_of_type(type_name, scope: Optional[str] = None) -> DatasetPaths:
    """The :data:`DATASET_PATHS` row of a dataset type (name, ``scope.Name`` or class) in a
    config whose ``default_scope`` is ``scope``."""
    if isinstance(type_name, str):
        name = type_name
    else:   # a class: its codebase is its package
        module = getattr(type_name, '__module__', '') or ''
        name = f"{module.split('.')[0]}.{getattr(type_name, '__name__', '')}"
    if '.' in name:
        scope, name = name.rsplit('.', 1)
    for key in ((f'{scope}.{name}', name) if scope else (name, )):
        if key in DATASET_PATHS:
            return DATASET_PATHS[key]
    return DatasetPaths()


def _value(cfg: dict, dotted: str) -> Optional[str]:
    node = cfg
    for part in dotted.split('.'):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node if isinstance(node, str) and node else None


def _join(root: Optional[str], path: str) -> str:
    return path if not root or osp.isabs(path) else osp.join(root, path)


def _exists(path: str, kind: str) -> bool:
    return osp.isfile(path) if kind == 'file' else osp.isdir(path)


def _needed(cfg, loaders: Sequence[str]) -> Iterator[Tuple[str, str, Tuple[str, str, str]]]:
    """(path, 'file'|'folder', (key, loader, type)) for every path the loaders need."""
    scope = cfg.get('default_scope')
    for split in loaders:
        loader = cfg.get(f'{split}_dataloader')
        if not loader or not cfg.get(f'{split}_cfg'):
            continue   # no such loop (e.g. val_cfg=None: no validation)
        for dataset in dataset_leaves(loader.get('dataset')):
            use = (f'{split}_dataloader', str(dataset.get('type')))
            root = dataset.get('data_root') or None
            if root and '://' not in root and not osp.isdir(root):
                yield root, 'folder', ('data_root', *use)
                continue   # everything below it is missing too: name the root only
            row = paths_of_type(dataset.get('type'), scope)
            for kind, keys, rooted in (('file', row.files, True), ('folder', row.folders, True),
                                       ('file', row.files_as_written, False)):
                for key in keys:
                    value = _value(dataset, key)
                    if value is not None and '://' not in value:
                        yield _join(root if rooted else None, value), kind, (key, *use)
        evaluators = cfg.get(f'{split}_evaluator')
        for evaluator in evaluators if isinstance(evaluators, (list, tuple)) else [evaluators]:
            value = _value(evaluator, 'ann_file') if isinstance(evaluator, dict) else None
            if value is not None and '://' not in value:
                yield value, 'file', ('ann_file', f'{split}_evaluator', str(evaluator.get('type')))


def missing_paths(cfg, loaders: Iterable[str] = ('train', 'val')) -> List[MissingPath]:
    """The files/folders the datasets (and evaluators) of ``loaders`` need that are not there.

    ``loaders``: ``'train'``, ``'val'``, ``'test'``; one whose loop the config switches off
    (``val_cfg=None``) is skipped.

    A path inside a missing folder is left out: the folder is named instead.
    """
    missing: Dict[str, MissingPath] = {}
    for path, kind, use in _needed(cfg, tuple(loaders)):
        key = osp.normpath(path)
        if key in missing:
            missing[key].uses.append(use)
        elif not _exists(path, kind):
            missing[key] = MissingPath(path, kind, [use])
    folders = [k for k, m in missing.items() if m.kind == 'folder']
    return [m for k, m in missing.items()
            if not any(k != f and k.startswith(f + osp.sep) for f in folders)]


def missing_data_message(missing: Sequence[MissingPath], config: str) -> str:
    """What ``tools/train.py``/``test.py`` exit with when data is missing."""
    return '\n'.join([
        f'the dataset of {config} is not there (nothing was built):',
        *(f'  {m}' for m in missing),
        'Put it there as README "Datasets" describes, or point the config at where it is with '
        '--data-root DIR;',
        f'check it with: python tools/check_dataset.py {config} --data-root DIR',
        '(tools/dataset_converters/generate_demo_data.py generates a small demo dataset).'])

"""What tools/train.py and tools/test.py share: config loading and adjustment.

The codebase (mmdet, mmseg, mmpretrain or mmpose) is chosen from the config's
``default_scope``;
the runner itself is mmengine's, so every OpenMMLab convention (work_dirs,
``--resume``, ``--cfg-options``, hooks, logging) holds.
"""
import json
import os
import os.path as osp
from typing import Optional, Sequence

import torch
from mmengine.config import Config

SCOPES = ('mmdet', 'mmseg', 'mmpretrain', 'mmpose')


class DataNotFound(FileNotFoundError):
    """The data a config needs is not there; the tools exit with the message, no traceback."""


def codebase_of(cfg: Config) -> str:
    scope = cfg.get('default_scope')
    if scope not in SCOPES:
        raise ValueError(f'config default_scope is {scope!r}; tools/ run detection (mmdet), '
                         'segmentation (mmseg), classification (mmpretrain) or pose (mmpose) '
                         f'configs: set default_scope to one of {SCOPES}')
    return scope


def add_common_args(parser) -> None:
    """The flags tools/train.py and tools/test.py both take."""
    from mmengine.config import DictAction
    parser.add_argument('--data-root',
                        help='point every dataloader/evaluator at this dataset root '
                        '(same as --cfg-options data_root=DIR)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value (mmengine syntax)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def config_from_args(args, loaders: Sequence[str] = ()) -> Config:
    """Load ``args.config`` with the common flags applied, ready for a Runner.

    The datasets of ``loaders`` (``'train'``, ``'val'``, ``'test'``) are checked to exist
    before anything is built: :class:`DataNotFound` names what is missing.
    """
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    options = dict(args.cfg_options or {})
    if args.data_root:
        options['data_root'] = args.data_root
    cfg = load_config(args.config, options)
    codebase_of(cfg)
    check_data(cfg, loaders, args.config)
    cfg.launcher = args.launcher
    set_work_dir(cfg, args.config, args.work_dir)
    adapt_to_machine(cfg)
    return cfg


def check_data(cfg: Config, loaders: Sequence[str], config: str) -> None:
    """:class:`DataNotFound` naming every file/folder the ``loaders`` need that is not there
    (:mod:`mlla_mm.datasets.required_paths`)."""
    from ..datasets.required_paths import missing_data_message, missing_paths
    missing = missing_paths(cfg, loaders)
    if missing:
        raise DataNotFound(missing_data_message(missing, config))


_runners_built = 0


def build_runner(cfg: Config):
    """The config's runner (malloc tuned first to keep freed memory for the next step:
    :mod:`mlla_mm.utils.cpu_allocator`). A second runner in one process (``tools/demo.py``
    runs test, train and test in one) gets a visualizer of its own: mmengine hands back the
    existing instance of a name (the configs' ``name='visualizer'``), whose backends write
    into the first run's folder."""
    global _runners_built
    from mmengine.registry import RUNNERS
    from .cpu_allocator import keep_freed_memory
    keep_freed_memory()     # steps reuse the memory the last one freed (no page faults)
    from mmengine.runner import Runner
    if _runners_built and cfg.get('visualizer') is not None:
        cfg.visualizer.name = f"{cfg.visualizer.get('name', 'visualizer')}_{_runners_built}"
    _runners_built += 1
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    from .package_configs import is_package_config, resolve
    if is_package_config(path):
        path = resolve(path)
    elif not osp.isfile(path):
        raise FileNotFoundError(f'config file not found: {path!r} (configs live in configs/, '
                                'e.g. configs/mask_rcnn_mlla_t.py; or name one as '
                                'mlla_mm::mask_rcnn_mlla_t.py)')
    cfg = Config.fromfile(path)
    if cfg_options:
        data_root = cfg_options.pop('data_root', None)
        cfg.merge_from_dict(cfg_options)
        if data_root is not None:
            set_data_root(cfg, data_root)
    return cfg


def _dataloaders(cfg: Config):
    from ..datasets.required_paths import dataset_leaves
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        if loader is None:
            continue
        # wrappers (RepeatDataset, ConcatDataset ...) keep the real ones inside
        for dataset in dataset_leaves(loader.get('dataset')):
            yield key, dataset


def _coco_categories(ann_file: str):
    with open(ann_file) as f:
        cats = json.load(f).get('categories', [])
    return tuple(c['name'] for c in sorted(cats, key=lambda c: c['id']))


def set_data_root(cfg: Config, data_root: str) -> Config:
    """Point every dataloader and evaluator of ``cfg`` at ``data_root``.

    ``data_root`` in a config file is a plain variable, so overriding it with
    ``--cfg-options data_root=...`` would change nothing; this does what the user
    means. For COCO-format data whose categories differ from the config's class
    list (e.g. the generated demo data with the COCO configs), the class list and
    the heads' ``num_classes`` follow the annotation file, with a warning.
    """
    from mmengine.logging import print_log
    if not osp.isdir(data_root):
        raise DataNotFound(f'--data-root {data_root!r} is not a directory (generate the demo '
                           'data with tools/dataset_converters/generate_demo_data.py, or '
                           'see README "Datasets" for COCO / ADE20K)')
    data_root = data_root.rstrip('/') + '/'
    for _, dataset in _dataloaders(cfg):
        dataset['data_root'] = data_root
    for key in ('val_evaluator', 'test_evaluator'):
        evaluator = cfg.get(key)
        if isinstance(evaluator, dict) and evaluator.get('ann_file'):
            # keep the file's path relative to the old root (annotations/xxx.json)
            rel = evaluator['ann_file'].split('annotations/', 1)[-1]
            evaluator['ann_file'] = osp.join(data_root, 'annotations', rel)
    if codebase_of(cfg) == 'mmdet':
        _follow_coco_classes(cfg, data_root, print_log)
    elif codebase_of(cfg) == 'mmpose':
        _follow_person_detections(cfg, data_root, print_log)
    return cfg


def _follow_person_detections(cfg, data_root, print_log):
    """mmpose reads ``bbox_file`` (top-down testing on detected boxes) as written, not
    under ``data_root``: move it to the new root, or test on the ground-truth boxes
    (with a warning) when the new root has no such file."""
    for key, dataset in _dataloaders(cfg):
        bbox_file = dataset.get('bbox_file')
        if not bbox_file:
            continue
        rel = bbox_file.split('person_detection_results/', 1)[-1]
        moved = osp.join(data_root, 'person_detection_results', osp.basename(rel))
        if osp.isfile(moved):
            dataset['bbox_file'] = moved
        else:
            print_log(f'{key}: no person detections {moved} under the new data_root; '
                      'testing on the ground-truth person boxes instead', logger='current',
                      level=30)
            dataset['bbox_file'] = None


def _follow_coco_classes(cfg, data_root, print_log):
    dataset = next((d for _, d in _dataloaders(cfg)), None)
    if dataset is None or not dataset.get('ann_file'):
        return
    ann_file = osp.join(data_root, dataset['ann_file'])
    if not osp.isfile(ann_file):
        return
    classes = _coco_categories(ann_file)
    configured = (dataset.get('metainfo') or {}).get('classes')
    if not classes or (configured is not None and tuple(configured) == classes):
        return
    print_log(f'{ann_file} has {len(classes)} categories {classes}; using them as the class '
              'list and num_classes (the config named others)', logger='current', level=30)
    for _, ds in _dataloaders(cfg):
        ds['metainfo'] = dict(classes=classes)
    _set_num_classes(cfg.model, len(classes))


def _set_num_classes(node, num_classes: int) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == 'num_classes':
                node[key] = num_classes
            else:
                _set_num_classes(value, num_classes)
    elif isinstance(node, (list, tuple)):
        for item in node:
            _set_num_classes(item, num_classes)


def adapt_to_machine(cfg: Config) -> Config:
    """Without CUDA: gloo for distributed runs."""
    if not torch.cuda.is_available():
        env = cfg.setdefault('env_cfg', {})
        env.setdefault('dist_cfg', {})['backend'] = 'gloo'
    return cfg


def set_work_dir(cfg: Config, config_path: str, work_dir: Optional[str]) -> None:
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        name = config_path.split('::')[-1]   # mlla_mm::NAME.py too
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(name))[0])


def stop_dataloader_workers(runner) -> int:
    """Shut down the worker processes of the runner's dataloaders (persistent workers stay
    alive between epochs); returns how many iterators were stopped.

    Call when the run is over, before the runner is dropped. Left to the garbage collector
    (the iterator sits in a reference cycle with the runner), a multiprocessing queue's
    finalizer stops its feeder thread before the iterator's own shutdown puts the "stop"
    message in it: each worker then waits for a message that never comes, torch's shutdown
    waits 5 s for each and sends SIGTERM, which our workers ignore (``PreemptionHook``) --
    20 s after every in-process training run (``tools/demo.py``) and workers left alive
    until the process exits. A process that exits right away loses nothing either way.
    """
    from torch.utils.data.dataloader import _MultiProcessingDataLoaderIter
    stopped = 0
    for name in ('train_loop', 'val_loop', 'test_loop'):
        loop = getattr(runner, '_' + name, None)   # not the property: it would build the loop
        loader = getattr(loop, 'dataloader', None)
        iterator = getattr(loader, '_iterator', None)
        if isinstance(iterator, _MultiProcessingDataLoaderIter):
            iterator._shutdown_workers()
            loader._iterator = None
            stopped += 1
    return stopped


def close_distributed() -> None:
    """End a distributed run cleanly: wait for every process, then destroy the process group.

    Left to interpreter exit, gloo's process group is destroyed with a thread still joinable
    and one process aborts (``terminate called without an active exception``, SIGABRT) after a
    successful run; torchrun then reports the whole run failed. Call after ``runner.train()``
    or ``runner.test()`` returned; it does nothing in a single-process run.
    """
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


AMP_DTYPES = ('float16', 'bfloat16')


def compile_backbone(model, backend: Optional[str] = None) -> None:
    """``--compile [--compile-backend B]``: ``torch.compile`` the model's backbone as one graph.

    The backbone is compiled in place (``nn.Module.compile``: parameter names and checkpoints
    unchanged) with ``fullgraph=True``: the scans are registered operators
    (:mod:`mlla_kernels.library`), so every backbone but HRVMamba (DCNv4) is one graph; a
    graph break is an error, not a silent slowdown. Heads, losses and data handling stay eager:
    mmengine's own ``compile=True`` (the whole ``train_step``) stops inside Dynamo on
    mmengine's data structures with torch 2.14 (docs/deploy.md).
    """
    from mmengine.model import is_model_wrapper
    model = model.module if is_model_wrapper(model) else model
    backbone = getattr(model, 'backbone', None)
    if backbone is None:
        raise ValueError(f'--compile compiles the backbone; {type(model).__name__} has none')
    options = dict(fullgraph=True)
    if backend is not None:
        options['backend'] = backend
    backbone.compile(**options)


def enable_amp(cfg: Config, dtype: Optional[str] = None) -> None:
    """``--amp [--amp-dtype D]``: mixed-precision training.

    With CUDA: mmengine's ``AmpOptimWrapper`` (float16 with dynamic loss scaling, or
    ``dtype``). Without: our ``AutocastOptimWrapper`` in bfloat16 -- mmengine's refuses
    CPUs, and CPU float16 without loss scaling would underflow.
    """
    if dtype is not None and dtype not in AMP_DTYPES:
        raise ValueError(f'--amp-dtype {dtype!r}: choose one of {AMP_DTYPES}')
    wrapper = cfg.optim_wrapper
    if torch.cuda.is_available():
        wrapper.type = 'AmpOptimWrapper'
        wrapper.setdefault('loss_scale', 'dynamic')
        if dtype is not None:
            wrapper.dtype = dtype
        return
    if dtype == 'float16':
        raise ValueError('--amp-dtype float16 needs loss scaling, which mmengine only does on '
                         'a GPU; on the CPU --amp trains in bfloat16 (leave --amp-dtype out)')
    from mmengine.logging import print_log
    print_log('--amp without CUDA: training under bfloat16 autocast on the CPU '
              '(AutocastOptimWrapper)', logger='current', level=30)
    wrapper.type = 'AutocastOptimWrapper'
    wrapper.pop('loss_scale', None)
    wrapper.dtype = 'bfloat16'

"""``mlla_mm::NAME`` config references: the configs shipped inside the package.

mmdet users write ``_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py']``.
The same works for ours once ``mlla_mm`` is imported::

    _base_ = ['mlla_mm::mask_rcnn_mlla_t.py']
    cfg = Config.fromfile('mlla_mm::upernet_vmamba_t.py')

Where the files are: a built wheel carries the repository's ``configs/`` as
``mlla_mm/.mim/configs`` (the layout mmengine reads for mmdet/mmseg; ``setup.py`` copies
it at build time, so ``configs/`` stays the single source); an editable install or a
source checkout reads ``configs/`` next to the package.

Why a hook is needed: mmengine 0.10.7 resolves ``pkg::`` only for the codebases in its
``MODULE2PACKAGE`` table, only for paths with a folder (``\\w*::\\w*/\\w*``), and
``Config.fromfile`` does not resolve ``pkg::`` at all. It would also stamp
``_scope_='mlla_mm'`` on every dict of such a base -- a scope no registry has. Our
configs set ``default_scope`` (mmdet or mmseg) and ``custom_imports`` themselves, so
an ``mlla_mm::`` base is merged as a local one (no ``_scope_``).
"""
import os
import os.path as osp
from typing import List

PREFIX = 'mlla_mm::'
_PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))


def config_root() -> str:
    """The folder ``mlla_mm::`` names are relative to."""
    shipped = osp.join(_PACKAGE_DIR, '.mim', 'configs')
    if osp.isdir(shipped):
        return shipped
    source_tree = osp.dirname(_PACKAGE_DIR)                # editable install / checkout
    checkout = osp.join(source_tree, 'configs')
    if osp.isdir(checkout) and osp.isfile(osp.join(source_tree, 'setup.py')):
        return checkout
    raise FileNotFoundError(
        f'mlla_mm configs not found: neither {shipped} (an installed wheel) nor {checkout} '
        '(a source checkout) exists. Reinstall mlla-mm from a wheel built by its setup.py '
        '(`pip install .`), which ships configs/ inside the package.')


def available() -> List[str]:
    """Every config name ``mlla_mm::`` accepts (``_base_`` files included)."""
    root = config_root()
    names = []
    for folder, _, files in os.walk(root):
        names += [osp.relpath(osp.join(folder, f), root).replace(os.sep, '/')
                  for f in files if f.endswith('.py')]
    return sorted(names)


def is_package_config(path) -> bool:
    return isinstance(path, str) and path.startswith(PREFIX)


def resolve(path: str) -> str:
    """``'mlla_mm::mask_rcnn_mlla_t.py'`` -> absolute path of that config file."""
    name = path[len(PREFIX):] if is_package_config(path) else path
    root = config_root()
    full = osp.normpath(osp.join(root, name))
    if not full.startswith(root + os.sep) or not osp.isfile(full):
        top = [n for n in available() if '_base_/' not in n]
        raise FileNotFoundError(
            f'{PREFIX}{name}: no such config in {root}. Names are paths relative to the '
            f"repository's configs/ folder, e.g. {PREFIX}mask_rcnn_mlla_t.py or "
            f'{PREFIX}demo/mask_rcnn_mlla_demo.py; available: {", ".join(top)}')
    return full


def install() -> None:
    """Teach mmengine's ``Config`` the ``mlla_mm::`` prefix (idempotent)."""
    from mmengine.config import Config
    if getattr(Config, '_mlla_mm_package_configs', False):
        return
    get_cfg_path = Config._get_cfg_path
    fromfile = Config.fromfile

    def _get_cfg_path(cfg_path, filename):
        if is_package_config(cfg_path):
            return resolve(cfg_path), None   # merged as a local base: see module doc
        return get_cfg_path(cfg_path, filename)

    def _fromfile(filename, *args, **kwargs):
        if is_package_config(filename):
            filename = resolve(filename)
        return fromfile(filename, *args, **kwargs)

    _fromfile.__doc__ = fromfile.__doc__
    Config._get_cfg_path = staticmethod(_get_cfg_path)
    Config.fromfile = staticmethod(_fromfile)
    Config._mlla_mm_package_configs = True

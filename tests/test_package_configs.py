"""Configs referenced as ``mlla_mm::NAME.py``: from this checkout (editable install) and from a
wheel built here and installed into a temporary folder, resolved from another directory."""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import textwrap

import pytest
from mmengine.config import Config

import mlla_mm
from mlla_mm.utils import package_configs

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def test_fromfile_and_base_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = Config.fromfile('mlla_mm::upernet_vmamba_t.py')
    assert cfg.model.backbone.type == 'VMamba' and cfg.default_scope == 'mmseg'
    assert cfg.filename == osp.join(ROOT, 'configs', 'upernet_vmamba_t.py')

    (tmp_path / 'mine.py').write_text(textwrap.dedent('''
        _base_ = ['mlla_mm::mask_rcnn_mlla_t.py']
        model = dict(backbone=dict(drop_path_rate=0.3))
    '''))
    cfg = Config.fromfile('mine.py')
    assert cfg.model.backbone.type == 'MLLA' and cfg.model.backbone.drop_path_rate == 0.3
    assert cfg.model.backbone.init_cfg.checkpoint == 'checkpoints/MLLA_T.pth'
    assert cfg.default_scope == 'mmdet' and cfg.custom_imports.imports == ['mlla_mm']
    # merged as a local base: no `_scope_='mlla_mm'` (a scope no registry has)
    assert '_scope_' not in cfg.model and '_scope_' not in cfg.train_dataloader


def test_inherited_config_builds(tmp_path):
    pytest.importorskip('mmdet')
    from mmengine.registry import MODELS, init_default_scope
    (tmp_path / 'mine.py').write_text("_base_ = ['mlla_mm::demo/mask_rcnn_mlla_demo.py']\n")
    cfg = Config.fromfile(str(tmp_path / 'mine.py'))
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)
    assert type(model).__name__ == 'MaskRCNN' and type(model.backbone).__name__ == 'MLLA'


def test_unknown_or_outside_names_are_errors():
    with pytest.raises(FileNotFoundError, match=r'mlla_mm::mask_rcnn_mlla_x\.py: no such config'
                       r'.*available: .*mask_rcnn_mlla_t\.py'):
        Config.fromfile('mlla_mm::mask_rcnn_mlla_x.py')
    with pytest.raises(FileNotFoundError, match='no such config'):
        package_configs.resolve('mlla_mm::../setup.py')
    names = package_configs.available()
    assert 'mask_rcnn_mlla_t.py' in names and '_base_/models/upernet.py' in names


@pytest.mark.e2e   # a fresh Python process: not in make test-fast
def test_train_tool_accepts_package_names():
    from mlla_mm.utils import launch
    cfg = launch.load_config('mlla_mm::upernet_mlla_t.py')
    launch.set_work_dir(cfg, 'mlla_mm::upernet_mlla_t.py', None)
    assert cfg.work_dir == './work_dirs/upernet_mlla_t'


_PROBE = textwrap.dedent('''
    import json, os, sys
    import mlla_mm, mlla_kernels
    from mmengine.config import Config
    with open('user_config.py', 'w') as f:
        f.write("_base_ = ['mlla_mm::mask_rcnn_mlla_t.py']\\n"
                "model = dict(backbone=dict(arch='small'))\\n")
    user = Config.fromfile('user_config.py')
    seg = Config.fromfile('mlla_mm::upernet_vmamba_t.py')
    demo = Config.fromfile('mlla_mm::demo/upernet_vim_demo.py')
    print(json.dumps(dict(package=mlla_mm.__file__, kernels=mlla_kernels.__file__,
                          user=[user.model.backbone.type, user.model.backbone.arch],
                          seg=seg.model.backbone.type, seg_file=seg.filename,
                          demo=demo.model.backbone.type)))
''')


def _run(cmd, cwd, env=None):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, **(env or {})))
    if proc.returncode:
        pytest.fail(f'{" ".join(cmd)} exited {proc.returncode}\n{proc.stdout[-3000:]}\n'
                    f'{proc.stderr[-3000:]}')
    return proc.stdout


@pytest.mark.e2e   # a fresh Python process: not in make test-fast
def test_wheel_ships_configs(tmp_path):
    """Build a wheel from a clean copy of the sources, install it into a folder of its own
    and resolve ``mlla_mm::`` names from yet another folder with only that install."""
    source = tmp_path / 'source'
    source.mkdir()
    for name in ('setup.py', 'pyproject.toml', 'README.md', 'MANIFEST.in'):
        shutil.copy(osp.join(ROOT, name), source / name)
    for name in ('mlla_mm', 'mlla_kernels', 'configs'):
        shutil.copytree(osp.join(ROOT, name), source / name,
                        ignore=shutil.ignore_patterns('__pycache__', '*.pyc', '.mim'))
    pip = [sys.executable, '-m', 'pip', '--disable-pip-version-check', '--no-input']
    _run(pip + ['wheel', '--no-deps', '--no-build-isolation', '--no-index', '-q',
                '-w', str(tmp_path / 'dist'), str(source)], cwd=tmp_path)
    wheel, = (tmp_path / 'dist').glob('mlla_mm-*.whl')
    site = tmp_path / 'site'
    _run(pip + ['install', '--no-deps', '--no-index', '-q', '--target', str(site), str(wheel)],
         cwd=tmp_path)
    shipped = site / 'mlla_mm' / '.mim' / 'configs'
    ours = sorted(osp.relpath(osp.join(d, f), osp.join(ROOT, 'configs'))
                  for d, _, fs in os.walk(osp.join(ROOT, 'configs')) for f in fs
                  if f.endswith('.py'))
    assert sorted(osp.relpath(osp.join(d, f), shipped) for d, _, fs in os.walk(shipped)
                  for f in fs if '__pycache__' not in d) == ours   # every config, nothing else
    assert not (site / 'tests').exists()

    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    out = _run([sys.executable, '-c', _PROBE], cwd=elsewhere,
               env=dict(PYTHONPATH=str(site), PYTHONNOUSERSITE='1'))
    found = json.loads(out.strip().splitlines()[-1])
    assert found['package'].startswith(str(site)) and found['kernels'].startswith(str(site))
    assert found['user'] == ['MLLA', 'small']
    assert found['seg'] == 'VMamba' and found['seg_file'].startswith(str(shipped))
    assert found['demo'] == 'Vim'
    assert mlla_mm.__file__.startswith(ROOT)   # this process: the checkout, untouched

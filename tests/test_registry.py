"""One class per backbone, visible from every installed OpenMMLab registry."""
import subprocess
import sys

import pytest

import mlla_mm  # noqa: F401
from mlla_mm import registry

BACKBONES = [cls.__name__ for cls in registry.registered('MODELS')]


def test_our_backbones_are_registered():
    assert 'MLLA' in BACKBONES


@pytest.mark.parametrize('codebase', ['mmdet', 'mmseg', 'mmpretrain', 'mmpose'])
def test_lookup_from_each_codebase(codebase):
    mod = pytest.importorskip(f'{codebase}.registry')
    from mmengine.registry import MODELS as ROOT
    for name in BACKBONES:
        cls = mod.MODELS.get(name)
        assert cls is not None, f'{name} missing from {codebase}.registry.MODELS'
        assert cls is ROOT.get(name), 'the same class object everywhere (no per-codebase copy)'


def test_build_from_mmengine_root_registry():
    from mmengine.registry import MODELS
    model = MODELS.build(dict(type='MLLA', arch=dict(embed_dims=16, depths=[1, 1, 1, 1],
                                                     num_heads=[1, 1, 2, 2])))
    assert type(model).__name__ == 'MLLA'


def test_register_model_helper_fills_every_registry():
    from mmengine.model import BaseModule
    from mmengine.registry import MODELS

    @registry.register_model(name='_RegistryProbe')
    class Probe(BaseModule):
        pass

    assert MODELS.get('_RegistryProbe') is Probe
    for codebase in registry.installed_codebases():
        mod = __import__(f'{codebase}.registry', fromlist=['MODELS'])
        assert mod.MODELS.get('_RegistryProbe') is Probe


@pytest.mark.e2e   # a fresh Python process: not in make test-fast
def test_import_without_any_codebase():
    """mlla_mm must import, register and build with torch + mmengine alone."""
    code = '''
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('mmdet', 'mmseg', 'mmpretrain', 'mmpose', 'mmcv'):
            raise ImportError('blocked for this test: ' + name)
sys.meta_path.insert(0, Block())
import mlla_mm
from mlla_mm.registry import installed_codebases
assert installed_codebases() == [], installed_codebases()
from mmengine.registry import MODELS
m = MODELS.build(dict(type='MLLA', arch=dict(embed_dims=16, depths=[1,1,1,1], num_heads=[1,1,2,2])))
assert not any(k.startswith(('mmdet', 'mmseg', 'mmpose', 'mmcv')) for k in sys.modules)
print('OK')
'''
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert out.returncode == 0 and 'OK' in out.stdout, out.stderr[-3000:]

"""Package discovery: `mlla_mm/` and `mlla_kernels/`.

A built wheel also ships the repository's `configs/` as `mlla_mm/.mim/configs` (the layout
mmdet/mmseg use), so `mlla_mm::NAME.py` resolves from any installation; `configs/` stays
the single source (new configs ship automatically). Editable installs read `configs/`.
"""
import os
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

ROOT = os.path.dirname(os.path.abspath(__file__))

packages = find_packages(include=['mlla_mm', 'mlla_mm.*', 'mlla_kernels', 'mlla_kernels.*'])


class BuildPyWithConfigs(build_py):
    """build_py that also copies configs/ to <build>/mlla_mm/.mim/configs."""

    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False):
            return
        target = os.path.join(self.build_lib, 'mlla_mm', '.mim', 'configs')
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(os.path.join(ROOT, 'configs'), target,
                        ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))


setup(packages=packages,
      cmdclass={'build_py': BuildPyWithConfigs})

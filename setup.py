"""Package discovery: `mlla_mm/` and `kernels/` (imported as `mlla_kernels`)."""
from setuptools import find_packages, setup

packages = find_packages(include=['mlla_mm', 'mlla_mm.*'])
packages += ['mlla_kernels'] + ['mlla_kernels.' + p for p in find_packages('kernels')]

setup(packages=packages,
      package_dir={'mlla_kernels': 'kernels'},
      package_data={'mlla_mm': ['configs/**/*.py']})

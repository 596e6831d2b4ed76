"""Analysis of backbones, behind the scripts in ``tools/analysis/``; nothing at run time
imports it.

* :mod:`.flops` -- parameters and FLOPs (selective scans and attention counted as the
  papers do), for ``tools/analysis/get_flops.py``;
* :mod:`.benchmark` -- time and memory against input resolution, with its command line
  (``tools/analysis/benchmark_backbones.py``).

(The kernels' own benchmark is ``mlla_kernels.benchmark``.)
"""

"""Resolution-scaling benchmark: time, memory and images/s of backbones against pixels.

    python tools/analysis/benchmark_backbones.py [--backbones MLLA-T ...] [--sizes 224 512 ...]
        [--device cpu] [--train] [--out-dir work_dirs/backbone_scaling]

The benchmark and its options live in mlla_mm/analysis/benchmark.py (also runnable as
``python -m mlla_mm.analysis.benchmark``); ``--help`` lists the examples.
"""
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..')))

from mlla_mm.analysis.benchmark import main  # noqa: E402

if __name__ == '__main__':
    main()

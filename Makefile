# The two commands of the README. Each does its own set-up (tools/setup_env.sh:
# ~25 min on a fresh machine, seconds when everything is there).
PY := .venv/bin/python
PYTEST_ARGS ?=
TEST_WORKERS ?= 2
# numba's compiled kernels (mlla_kernels.numba_cache) beside pip's cache, the one cache a CI
# machine keeps between runs (as the mmcv wheel): a fresh machine loads them instead of
# compiling every kernel again (~30 s of the test suite). Set NUMBA_CACHE_DIR to choose.
export NUMBA_CACHE_DIR ?= $(shell python3 -m pip cache dir 2>/dev/null || echo $(HOME)/.cache/pip)/mlla-mm-numba

.PHONY: setup demo demo-seg demo-medseg demo-pose test test-fast benchmark clean

setup:
	bash tools/setup_env.sh

demo: setup
	$(PY) tools/demo.py --task det

demo-seg: setup
	$(PY) tools/demo.py --task seg

demo-medseg: setup
	$(PY) tools/demo.py --task medseg

demo-pose: setup
	$(PY) tools/demo.py --task pose

# test: everything (what CI runs); test-fast: the unit tests, not the e2e ones (< 2 min).
# TEST_WORKERS pytest-xdist workers share the cores (tests/conftest.py); 0 runs in one process.
test: setup
	$(PY) -m pytest tests -q -n $(TEST_WORKERS) --durations=15 $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest tests -q -n $(TEST_WORKERS) -m "not e2e" --durations=10 $(PYTEST_ARGS)

benchmark: setup
	$(PY) -m mlla_kernels.benchmark

clean:
	rm -rf work_dirs data/demo_coco data/demo_ade20k data/demo_isic data/demo_coco_pose

#!/usr/bin/env bash
# Creates .venv/ in the repo root and installs the pinned stack (idempotent).
# A second run with everything present takes seconds: each step is skipped
# when its stamp matches. mmcv is rebuilt whenever the installed torch changes,
# because pip's wheel cache would otherwise hand back a wheel built for another torch.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3

TORCH_VERSION=2.14.1
TORCHVISION_VERSION=0.29.1
MMCV_VERSION=2.1.0

log() { echo "[setup $(date +%H:%M:%S)] $*"; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment at .venv/"
  "$PY" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"
VPY="$VENV/bin/python"

have_version() {  # have_version <dist> <version>
  "$VPY" - "$1" "$2" <<'PYEOF' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if version(sys.argv[1]).split('+')[0] == sys.argv[2] else 1)
PYEOF
}

# 1. torch + torchvision (both lie on this machine's disk; never let pip pick another torch).
if ! have_version torch "$TORCH_VERSION" || ! have_version torchvision "$TORCHVISION_VERSION"; then
  log "installing torch $TORCH_VERSION + torchvision $TORCHVISION_VERSION"
  $PIP install -q --upgrade pip
  $PIP install -q "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
fi

# 2. build tools for mmcv (its setup.py imports pkg_resources).
if ! have_version setuptools 80.9.0; then
  $PIP install -q "setuptools==80.9.0" wheel ninja
fi

# 3. mmcv with its ops, compiled against the installed torch.
#    mmcv 2.1.0's setup.py asks for -std=c++14/17, but torch >= 2.10 headers need C++20,
#    so we build from the sdist with that flag raised. Local-directory builds are not kept
#    by pip's wheel cache, so we keep the wheel ourselves, keyed by the torch version,
#    under pip's cache dir (which survives between machines' sessions).
TORCH_STAMP=$("$VPY" -c 'import torch; print(torch.__version__)')
MMCV_STAMP_FILE=$VENV/.mmcv-built-for-torch
PIP_CACHE=$($PIP cache dir 2>/dev/null || echo "$HOME/.cache/pip")
MMCV_WHEEL_DIR=$PIP_CACHE/mlla-mm-wheels/mmcv-$MMCV_VERSION-torch-$TORCH_STAMP
mmcv_ok() {
  [ -f "$MMCV_STAMP_FILE" ] && [ "$(cat "$MMCV_STAMP_FILE")" = "$TORCH_STAMP" ] && \
    "$VPY" -c 'from mmcv.ops import nms, roi_align' >/dev/null 2>&1
}
if ! mmcv_ok; then
  if ! ls "$MMCV_WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
    log "building mmcv $MMCV_VERSION with ops for torch $TORCH_STAMP (~20 min on 2 cores, once per torch version)"
    SRC=$(mktemp -d)
    $PIP download -q --no-deps --no-build-isolation "mmcv==$MMCV_VERSION" -d "$SRC"
    tar -xzf "$SRC"/mmcv-$MMCV_VERSION.tar.gz -C "$SRC"
    sed -i 's/-std=c++1[47]/-std=c++20/g' "$SRC/mmcv-$MMCV_VERSION/setup.py"
    mkdir -p "$MMCV_WHEEL_DIR"
    if ! MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
        $PIP wheel -q --no-build-isolation --no-deps "$SRC/mmcv-$MMCV_VERSION" -w "$SRC/dist" \
        > "$VENV/mmcv-build.log" 2>&1; then
      tail -40 "$VENV/mmcv-build.log"
      echo "mmcv build failed; full log: .venv/mmcv-build.log" >&2
      exit 1
    fi
    mv "$SRC"/dist/mmcv-*.whl "$MMCV_WHEEL_DIR"/
    rm -rf "$SRC"
  fi
  log "installing mmcv from $MMCV_WHEEL_DIR"
  $PIP install -q --no-deps --force-reinstall "$MMCV_WHEEL_DIR"/mmcv-*.whl
  # mmcv's own pure-python needs (no torch among them)
  $PIP install -q addict mmengine==0.10.7 numpy packaging Pillow pyyaml yapf opencv-python
  "$VPY" -c 'from mmcv.ops import nms, roi_align'
  echo "$TORCH_STAMP" > "$MMCV_STAMP_FILE"
fi

# 4. the OpenMMLab codebases and the rest, then this package (editable). mmpose: step 5.
REQ_STAMP_FILE=$VENV/.requirements-stamp
REQ_HASH=$(cat requirements.txt pyproject.toml setup.py | sha256sum | cut -d' ' -f1)
if [ ! -f "$REQ_STAMP_FILE" ] || [ "$(cat "$REQ_STAMP_FILE")" != "$REQ_HASH" ]; then
  log "installing requirements.txt and mlla-mm (editable)"
  $PIP install -q -r requirements.txt
  $PIP install -q --no-build-isolation --no-deps -e .
  echo "$REQ_HASH" > "$REQ_STAMP_FILE"
fi
# 5. mmpose (the pose configs) with --no-deps, because its declared requirements cannot be met
#    as declared here, although the code we use runs fine (tests/test_pose*.py):
#    - its `mim` extra asks for mmdet < 3.3 (we pin 3.3.0; mmpose imports only mmdet.utils/apis);
#    - `chumpy` (SMPL helpers mmpose never imports) does not build with current pip/setuptools;
#    - xtcocotools' PyPI wheels are compiled against numpy 1.x and refuse to import under numpy 2
#      ("numpy.dtype size changed"): we compile it from its sdist against the installed numpy
#      (Cython is its build tool; its setup.py imports numpy, hence --no-build-isolation).
#      pip caches the built wheel, so a second machine with the same cache skips the compile.
#    Then the pure-python modules mmpose imports (requirements.txt: json-tricks, munkres).
#    Nothing here can replace torch, mmcv or mmdet: every install is --no-deps.
MMPOSE_VERSION=1.3.2
XTCOCOTOOLS_VERSION=1.14.3
POSE_STAMP_FILE=$VENV/.mmpose-stamp
POSE_STAMP="mmpose-$MMPOSE_VERSION xtcocotools-$XTCOCOTOOLS_VERSION numpy-$("$VPY" -c 'import numpy; print(numpy.__version__)')"
mmpose_ok() {
  [ -f "$POSE_STAMP_FILE" ] && [ "$(cat "$POSE_STAMP_FILE")" = "$POSE_STAMP" ] && \
    "$VPY" -c 'import mmpose.apis, mmpose.models, mmpose.datasets, mmpose.evaluation' >/dev/null 2>&1
}
if ! mmpose_ok; then
  log "installing mmpose $MMPOSE_VERSION (--no-deps) and xtcocotools $XTCOCOTOOLS_VERSION (compiled for this numpy)"
  $PIP install -q "cython>=3"
  $PIP install -q --no-deps --no-build-isolation --no-binary xtcocotools \
    "xtcocotools==$XTCOCOTOOLS_VERSION"
  $PIP install -q --no-deps "mmpose==$MMPOSE_VERSION"
  "$VPY" -c 'import mmpose.apis, mmpose.models, mmpose.datasets, mmpose.evaluation'
  echo "$POSE_STAMP" > "$POSE_STAMP_FILE"
fi
# 6. the `deploy` extra (pyproject.toml): ONNX export and its checks (tests/e2e/test_onnx.py).
#    None of these depends on torch; the pins of torch/torchvision ride along as constraints
#    so that pip can never pick another torch.
DEPLOY_PINS="onnx==1.23.2 onnxruntime==1.32.0 onnxscript==0.7.2 openvino==2026.4.1"
deploy_ok() {
  have_version onnx 1.23.2 && have_version onnxruntime 1.32.0 && \
    have_version onnxscript 0.7.2 && have_version openvino 2026.4.1
}
if ! deploy_ok; then
  log "installing the deploy extra: $DEPLOY_PINS"
  # shellcheck disable=SC2086
  $PIP install -q $DEPLOY_PINS -c <(printf 'torch==%s\ntorchvision==%s\n' \
    "$TORCH_VERSION" "$TORCHVISION_VERSION")
  "$VPY" -c 'import onnx, onnxruntime, onnxscript, openvino'
fi
log "environment ready: $VENV"

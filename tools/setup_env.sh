#!/usr/bin/env bash
# Creates .venv/ in the repo root and installs the pinned stack (idempotent).
# A second run with everything present takes seconds: each step is skipped
# when its stamp matches. mmcv is rebuilt whenever the installed torch changes,
# because pip's wheel cache would otherwise hand back a wheel built for another torch.
#
# Two ways to the same environment:
#   * the FAST PATH (`uv_fast_path`), taken whenever something is missing: uv 0.13.9 does the
#     bulk (steps 1-4 and 6 below in ONE resolution and install, then mmpose with --no-deps);
#     pip then installs xtcocotools (its sdist build is kept in pip's wheel cache) and this
#     package (editable); one import check follows; the stamps are written last.
#   * the PIP PATH (steps 1-6 further down): the original pip-only set-up, unchanged (it only
#     reads torch.__version__ from torch/version.py now, without importing torch). It
#     runs when the fast path is not wanted (MLLA_SETUP_NO_UV=1), cannot be used (no uv wheel
#     and no way to fetch it, a pip option uv has no equivalent for) or fails at any point
#     (a log line says so; the pip path then checks every step again and finishes the job),
#     and when an import check fails on a venv whose stamps all match.
#   With everything present (all stamps match) a run makes one import check in one process.
#
# Why uv: pip unpacks wheels and byte-compiles their files one at a time. On a fresh clone with
# pip's cache warm (2-core box, shared with another job; 5 runs each, alternating; medians):
#     pip path: venv 3 s, torch+torchvision 68 s, mmcv 14 s, requirements.txt + -e . 17 s,
#               mmpose + xtcocotools 9 s, deploy extra 7 s                   = 124 s (110-142)
#     fast path: venv + uv + pip config 1 s, the one uv install 45 s (resolve 0.5 s, download
#               and unpack 27 s, link 1.5 s, byte-compile 15,741 files 18 s), mmpose +
#               xtcocotools + -e . + the import check 8 s                      = 54 s (54-67)
#     second run (everything present): 9.6-9.9 s -> 6.1-7.0 s
#   Both are CPU bound on 2 cores: writing the ~5 GB of torch + nvidia-* files costs ~4 s of
#   kernel time per GB on this VM (`dd` alone: ~3 s/GB) and compiling ~16,500 .py files ~35
#   CPU-s; uv does both on both cores, pip on one. (uv is fetched once: +1 s on a cold cache.)
#
# What the fast path keeps identical to the pip path:
#   - the versions (`pip freeze --all` of the two venvs is identical, but for the mmcv line: uv
#     records the wheel's file URL without pip's %2B escape and `#sha256=` fragment). uv gets
#     pip's own configuration, read at run time from `pip config list` (PIP_* variables >
#     [install] > [global], as pip reads them): index-url, extra-index-url, find-links,
#     constraint (/etc/xdg/pip/constraints.txt caps torch/torchvision), no-index, pre,
#     trusted-host, cert (-> SSL_CERT_FILE), timeout (-> UV_HTTP_TIMEOUT); any other option that
#     changes what pip installs sends the script to the pip path. `--index-strategy
#     unsafe-best-match` picks the best version across all indexes as pip does (uv's default
#     stops at the first index that has the package). uv's own settings are shut out: UV_*
#     variables unset, --no-config. torch/torchvision are exact pins, so nothing can fetch
#     another torch.
#   - .pyc files at install time (`--compile-bytecode`): this environment sets
#     PYTHONDONTWRITEBYTECODE=1, so without them every process would compile torch's sources
#     again. uv 0.13 compiles only the files it installed (timestamp .pyc files, as pip's).
#   - pip's cache: it only gains the uv wheel (~18 MB, mlla-mm-wheels/uv-*/ beside the mmcv
#     wheel). uv's own cache is a temporary directory inside .venv/ (same file system, so uv
#     hard-links its unpacked files into site-packages instead of copying them), deleted at
#     exit: nothing unpacked survives. The mmcv build and xtcocotools' sdist build stay with
#     pip (pip's wheel cache keeps xtcocotools' wheel; uv would rebuild it on a fresh machine).
# Not done: keeping unpacked torch/nvidia files or their .pyc files between machines (far over
# the cache budget, and .pyc files embed the source's mtime, which a new install changes).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3

TORCH_VERSION=2.14.1
TORCHVISION_VERSION=0.29.1
MMCV_VERSION=2.1.0
SETUPTOOLS_VERSION=80.9.0
MMPOSE_VERSION=1.3.2
XTCOCOTOOLS_VERSION=1.14.3
DEPLOY_PINS="onnx==1.23.2 onnxruntime==1.32.0 onnxscript==0.7.2 openvino==2026.4.1"
# mmcv's own pure-python needs (no torch among them)
MMCV_DEPS="addict mmengine==0.10.7 numpy packaging Pillow pyyaml yapf opencv-python"
UV_VERSION=0.13.9

log() { echo "[setup $(date +%H:%M:%S)] $*"; }

VPY="$VENV/bin/python"
PIP="$VPY -m pip"
PIP_CACHE=$("$PY" -m pip cache dir 2>/dev/null || echo "$HOME/.cache/pip")
REQ_STAMP_FILE=$VENV/.requirements-stamp
REQ_HASH=$(cat requirements.txt pyproject.toml setup.py | sha256sum | cut -d' ' -f1)
MMCV_STAMP_FILE=$VENV/.mmcv-built-for-torch
POSE_STAMP_FILE=$VENV/.mmpose-stamp

have_version() {  # have_version <dist> <version>
  "$VPY" - "$1" "$2" <<'PYEOF' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if version(sys.argv[1]).split('+')[0] == sys.argv[2] else 1)
PYEOF
}
# torch.__version__ (with its local tag, e.g. 2.14.1+cu130) read from torch/version.py without
# importing torch (~2 s, and far more before torch's .pyc files exist).
torch_stamp() {
  "$VPY" - <<'PYEOF'
import importlib.util, os
spec = importlib.util.find_spec('torch')
ns = {}
with open(os.path.join(spec.submodule_search_locations[0], 'version.py')) as f:
    exec(f.read(), ns)
print(ns['__version__'])
PYEOF
}
pose_stamp() {
  echo "mmpose-$MMPOSE_VERSION xtcocotools-$XTCOCOTOOLS_VERSION numpy-$("$VPY" -c 'import numpy; print(numpy.__version__)')"
}
deploy_ok() {  # every pin of DEPLOY_PINS installed
  local pin
  for pin in $DEPLOY_PINS; do have_version "${pin%%==*}" "${pin##*==}" || return 1; done
}
# What the pip path checks in three processes (steps 3, 5, 6), for one process.
IMPORT_CHECK='from mmcv.ops import nms, roi_align
import mmpose.apis, mmpose.models, mmpose.datasets, mmpose.evaluation
import onnx, onnxruntime, onnxscript, openvino'
stamp_is() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }
mmcv_wheel_dir() { echo "$PIP_CACHE/mlla-mm-wheels/mmcv-$MMCV_VERSION-torch-$1"; }

# ---------------------------------------------------------------------------------------------
# The fast path (uv). Runs in a subshell with `set -e`: any failure returns non-zero and the pip
# path below takes over from wherever it stopped (it checks every step again).
# ---------------------------------------------------------------------------------------------
everything_stamped() {  # cheap checks only (no imports): is there anything to install?
  [ -x "$VPY" ] && have_version torch "$TORCH_VERSION" && \
    have_version torchvision "$TORCHVISION_VERSION" && \
    have_version setuptools "$SETUPTOOLS_VERSION" && \
    stamp_is "$MMCV_STAMP_FILE" "$(torch_stamp 2>/dev/null)" && \
    stamp_is "$REQ_STAMP_FILE" "$REQ_HASH" && \
    stamp_is "$POSE_STAMP_FILE" "$(pose_stamp 2>/dev/null)" && deploy_ok
}

# uv's options equivalent to pip's configuration for `pip install` (files and PIP_* variables,
# as `pip config list` reports them; precedence as pip's: PIP_* variables > [install] >
# [global]). Prints "arg<TAB>value" / "env<TAB>NAME=value" lines; exits 3 naming an option
# that uv cannot mirror.
uv_options_from_pip_config() {
  "$PY" - <<'PYEOF'
import ast, subprocess, sys
out = subprocess.run([sys.executable, '-m', 'pip', 'config', 'list'],
                     capture_output=True, text=True, check=True).stdout
rank = {'global': 0, 'install': 1, ':env:': 2}
opts = {}
for line in out.splitlines():
    key, sep, value = line.partition('=')
    if not sep:
        continue
    section, _, name = key.rpartition('.')
    if section not in rank:          # [download], [wheel], ...: not read by `pip install`
        continue
    name = name.lstrip('-').replace('_', '-')
    try:
        value = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        pass
    if name not in opts or rank[section] >= opts[name][0]:
        opts[name] = (rank[section], str(value))
truthy = lambda v: v.strip().lower() in ('1', 'true', 'yes', 'on')
# options that do not change what gets installed
harmless = {'disable-pip-version-check', 'retries', 'progress-bar', 'quiet', 'verbose',
            'no-color', 'cache-dir', 'no-cache-dir', 'root-user-action', 'no-input',
            'no-python-version-warning', 'log', 'require-virtualenv', 'python'}
for name, (_, value) in sorted(opts.items()):
    items = value.split()
    if name in ('index-url', 'i'):
        print(f'arg\t--index-url\narg\t{value.strip()}')
    elif name == 'extra-index-url':
        for v in items:
            print(f'arg\t--extra-index-url\narg\t{v}')
    elif name in ('find-links', 'f'):
        for v in items:
            print(f'arg\t--find-links\narg\t{v}')
    elif name in ('constraint', 'c'):
        for v in items:
            print(f'arg\t--constraint\narg\t{v}')
    elif name == 'trusted-host':
        for v in items:
            print(f'arg\t--allow-insecure-host\narg\t{v}')
    elif name == 'no-index':
        if truthy(value):
            print('arg\t--no-index')
    elif name == 'pre':
        if truthy(value):
            print('arg\t--prerelease\narg\tallow')
    elif name == 'cert':
        print(f'env\tSSL_CERT_FILE={value.strip()}')
    elif name in ('timeout', 'default-timeout'):
        print(f'env\tUV_HTTP_TIMEOUT={int(float(value))}')
    elif name not in harmless:
        print(f'pip option {name!r} (= {value!r}) has no uv equivalent here', file=sys.stderr)
        sys.exit(3)
PYEOF
}

uv_fast_path() {
  # uv: the pinned release from a wheel kept in pip's cache dir (one download per cache).
  local uv_dir=$PIP_CACHE/mlla-mm-wheels/uv-$UV_VERSION whl
  whl=$(ls "$uv_dir"/uv-"$UV_VERSION"-*.whl 2>/dev/null | head -1 || true)
  if [ -z "$whl" ]; then
    log "fetching the uv $UV_VERSION wheel into $uv_dir"
    "$PY" -m pip download -q --no-deps --only-binary :all: "uv==$UV_VERSION" -d "$uv_dir"
    whl=$(ls "$uv_dir"/uv-"$UV_VERSION"-*.whl | head -1)
  fi
  "$PY" - "$whl" "$UV_TMP/uv" "uv-$UV_VERSION.data/scripts/uv" <<'PYEOF'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], 'wb') as f:
    f.write(z.read(sys.argv[3]))
os.chmod(sys.argv[2], 0o755)
PYEOF
  local UV=$UV_TMP/uv
  [ "$("$UV" --version | cut -d' ' -f1-2)" = "uv $UV_VERSION" ]

  # uv reads none of pip's configuration, and we want none of its own: UV_* variables unset,
  # --no-config (no uv.toml), everything passed explicitly.
  local v opts kind val
  for v in $(compgen -e | grep '^UV_' || true); do unset "$v"; done
  opts=$(uv_options_from_pip_config)
  local -a UV_ARGS=(pip install --no-config --python "$VPY" --compile-bytecode
                    --index-strategy unsafe-best-match)
  while IFS=$'\t' read -r kind val; do
    case $kind in
      arg) UV_ARGS+=("$val") ;;
      env) export "${val?}" ;;
    esac
  done <<< "$opts"
  export UV_CACHE_DIR=$UV_TMP/cache UV_NO_PROGRESS=1 UV_PYTHON_DOWNLOADS=never
  uv_install() {  # uv's summary lines go to the log, the per-package lines to .venv/uv.log
    log "uv pip install $*"
    if ! "$UV" "${UV_ARGS[@]}" "$@" > "$UV_TMP/out.log" 2>&1; then
      tail -30 "$UV_TMP/out.log"; cat "$UV_TMP/out.log" >> "$VENV/uv.log"; return 1
    fi
    cat "$UV_TMP/out.log" >> "$VENV/uv.log"
    grep -E '^(Resolved|Prepared|Uninstalled|Installed|Bytecode)' "$UV_TMP/out.log" | sed 's/^/    /' || true
  }

  # Steps 1-4 and 6 of the pip path in one uv resolution (one download/unpack/compile pass that
  # overlaps the downloads from the index with the unpacking of torch): torch + torchvision,
  # pip, build tools, the cached mmcv wheel and its needs, requirements.txt, cython (for
  # xtcocotools' build) and the deploy extra. The mmcv wheel's directory is named after
  # torch.__version__ (local tag included), which is known only once torch is installed: when
  # exactly one cached mmcv wheel matches TORCH_VERSION it goes into the same call, and is
  # checked afterwards; otherwise torch goes first and mmcv is built (with pip) if need be.
  local -a TORCH_REQS=("torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION" pip
                       "setuptools==$SETUPTOOLS_VERSION" wheel ninja)
  # shellcheck disable=SC2206
  local -a REST_REQS=($MMCV_DEPS -r requirements.txt "cython>=3" $DEPLOY_PINS)
  local -a guesses mmcv_whl=()
  local tstamp="" reinstall=()
  mapfile -t guesses < <(ls -d "$(mmcv_wheel_dir "$TORCH_VERSION")" \
                              "$(mmcv_wheel_dir "$TORCH_VERSION")"+* 2>/dev/null || true)
  if have_version torch "$TORCH_VERSION"; then tstamp=$(torch_stamp); fi
  if [ -z "$tstamp" ] && [ ${#guesses[@]} -eq 1 ] && ls "${guesses[0]}"/mmcv-*.whl >/dev/null 2>&1; then
    mmcv_whl=("${guesses[0]}"/mmcv-*.whl)
  else
    uv_install "${TORCH_REQS[@]}"
    tstamp=$(torch_stamp)
    local wdir; wdir=$(mmcv_wheel_dir "$tstamp")
    if ! ls "$wdir"/mmcv-*.whl >/dev/null 2>&1; then
      build_mmcv_wheel "$tstamp"
    fi
    mmcv_whl=("$wdir"/mmcv-*.whl)
    TORCH_REQS=()
  fi
  stamp_is "$MMCV_STAMP_FILE" "$tstamp" || reinstall=(--reinstall-package mmcv)
  uv_install "${reinstall[@]}" "${TORCH_REQS[@]}" "${mmcv_whl[@]}" "${REST_REQS[@]}"
  tstamp=$(torch_stamp)
  if [ "${mmcv_whl[0]%/*}" != "$(mmcv_wheel_dir "$tstamp")" ]; then
    echo "installed torch is $tstamp, but the mmcv wheel taken was ${mmcv_whl[0]}" >&2
    return 1
  fi
  # Step 5: mmpose without its declared requirements (see step 5 of the pip path).
  uv_install --no-deps "mmpose==$MMPOSE_VERSION"
  # With pip: xtcocotools built from its sdist against this numpy, the wheel kept in pip's
  # wheel cache (a warm cache skips the compile), and this package, editable.
  log "pip: xtcocotools $XTCOCOTOOLS_VERSION (--no-binary, pip's wheel cache) and mlla-mm (editable)"
  $PIP install -q --no-deps --no-build-isolation --no-binary xtcocotools \
    "xtcocotools==$XTCOCOTOOLS_VERSION" -e .
  # the pip path's three import checks (each imports torch) in one process
  log "checking the imports"
  "$VPY" -W ignore -c "$IMPORT_CHECK"
  echo "$tstamp" > "$MMCV_STAMP_FILE"
  echo "$REQ_HASH" > "$REQ_STAMP_FILE"
  pose_stamp > "$POSE_STAMP_FILE"
}

# mmcv with its ops, compiled against the installed torch (used by both paths).
#   mmcv 2.1.0's setup.py asks for -std=c++14/17, but torch >= 2.10 headers need C++20,
#   so we build from the sdist with that flag raised. Local-directory builds are not kept
#   by pip's wheel cache, so we keep the wheel ourselves, keyed by the torch version,
#   under pip's cache dir (which survives between machines' sessions).
build_mmcv_wheel() {  # build_mmcv_wheel <torch.__version__>
  local wdir SRC
  wdir=$(mmcv_wheel_dir "$1")
  log "building mmcv $MMCV_VERSION with ops for torch $1 (~20 min on 2 cores, once per torch version)"
  SRC=$(mktemp -d)
  $PIP download -q --no-deps --no-build-isolation "mmcv==$MMCV_VERSION" -d "$SRC"
  tar -xzf "$SRC"/mmcv-$MMCV_VERSION.tar.gz -C "$SRC"
  sed -i 's/-std=c++1[47]/-std=c++20/g' "$SRC/mmcv-$MMCV_VERSION/setup.py"
  mkdir -p "$wdir"
  if ! MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
      $PIP wheel -q --no-build-isolation --no-deps "$SRC/mmcv-$MMCV_VERSION" -w "$SRC/dist" \
      > "$VENV/mmcv-build.log" 2>&1; then
    tail -40 "$VENV/mmcv-build.log"
    echo "mmcv build failed; full log: .venv/mmcv-build.log" >&2
    exit 42
  fi
  mv "$SRC"/dist/mmcv-*.whl "$wdir"/
  rm -rf "$SRC"
}

UV_TMP=""
trap '[ -z "$UV_TMP" ] || rm -rf "$UV_TMP"' EXIT
FAST_DONE=0
if [ "${MLLA_SETUP_NO_UV:-0}" = 1 ]; then
  log "MLLA_SETUP_NO_UV=1: installing with pip only"
elif everything_stamped; then
  # Nothing to install: the pip path's three import checks, in one process (~6 s instead of ~11).
  if "$VPY" -W ignore -c "$IMPORT_CHECK" >/dev/null 2>&1; then
    FAST_DONE=1
  else
    log "an import check failed; the pip path checks each step again"
  fi
else
  if [ ! -x "$VPY" ]; then
    log "creating virtual environment at .venv/ (pip comes with the uv install)"
    "$PY" -m venv --without-pip "$VENV"
  fi
  UV_TMP=$(mktemp -d "$VENV/.uv-tmp.XXXXXX")  # uv's cache and binary; removed at exit
  set +e
  ( set -e; uv_fast_path )
  rc=$?
  set -e
  rm -f "$VENV/.lock"  # uv's lock of the environment
  if [ $rc -eq 0 ]; then
    FAST_DONE=1
  elif [ $rc -eq 42 ]; then
    exit 1  # the mmcv build failed (its log is above): the pip path would only try it again
  else
    log "uv fast path failed or unavailable (exit $rc); falling back to pip for the rest"
  fi
fi
if [ $FAST_DONE = 1 ]; then
  log "environment ready: $VENV"
  exit 0
fi

# ---------------------------------------------------------------------------------------------
# The pip path: the original set-up; with everything present, only its checks run.
# ---------------------------------------------------------------------------------------------
if [ ! -x "$VPY" ]; then
  log "creating virtual environment at .venv/"
  "$PY" -m venv "$VENV"
fi
if ! $PIP --version >/dev/null 2>&1; then  # a venv the fast path made, before pip came in
  log "installing pip into .venv/ (ensurepip, then the latest)"
  "$VPY" -m ensurepip >/dev/null
  $PIP install -q --upgrade pip
fi

# 1. torch + torchvision (both lie on this machine's disk; never let pip pick another torch).
if ! have_version torch "$TORCH_VERSION" || ! have_version torchvision "$TORCHVISION_VERSION"; then
  log "installing torch $TORCH_VERSION + torchvision $TORCHVISION_VERSION"
  $PIP install -q --upgrade pip
  $PIP install -q "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
fi

# 2. build tools for mmcv (its setup.py imports pkg_resources).
if ! have_version setuptools "$SETUPTOOLS_VERSION"; then
  $PIP install -q "setuptools==$SETUPTOOLS_VERSION" wheel ninja
fi

# 3. mmcv with its ops, compiled against the installed torch (build_mmcv_wheel above).
TORCH_STAMP=$(torch_stamp)
MMCV_WHEEL_DIR=$(mmcv_wheel_dir "$TORCH_STAMP")
mmcv_ok() {
  stamp_is "$MMCV_STAMP_FILE" "$TORCH_STAMP" && \
    "$VPY" -c 'from mmcv.ops import nms, roi_align' >/dev/null 2>&1
}
if ! mmcv_ok; then
  if ! ls "$MMCV_WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
    build_mmcv_wheel "$TORCH_STAMP"
  fi
  log "installing mmcv from $MMCV_WHEEL_DIR"
  $PIP install -q --no-deps --force-reinstall "$MMCV_WHEEL_DIR"/mmcv-*.whl
  # shellcheck disable=SC2086
  $PIP install -q $MMCV_DEPS
  "$VPY" -c 'from mmcv.ops import nms, roi_align'
  echo "$TORCH_STAMP" > "$MMCV_STAMP_FILE"
fi

# 4. the OpenMMLab codebases and the rest, then this package (editable). mmpose: step 5.
if ! stamp_is "$REQ_STAMP_FILE" "$REQ_HASH"; then
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
POSE_STAMP=$(pose_stamp)
mmpose_ok() {
  stamp_is "$POSE_STAMP_FILE" "$POSE_STAMP" && \
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
if ! deploy_ok; then
  log "installing the deploy extra: $DEPLOY_PINS"
  # shellcheck disable=SC2086
  $PIP install -q $DEPLOY_PINS -c <(printf 'torch==%s\ntorchvision==%s\n' \
    "$TORCH_VERSION" "$TORCHVISION_VERSION")
  "$VPY" -c 'import onnx, onnxruntime, onnxscript, openvino'
fi
log "environment ready: $VENV"

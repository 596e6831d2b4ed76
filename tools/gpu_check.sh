#!/usr/bin/env bash
# tools/gpu_check.sh [OUT_DIR]  --  the first session on a GPU, turned into numbers at once.
#
# Runs, each under its own time limit (about 9.5 minutes in all, see BUDGET below):
#   1. env          nvidia-smi, python/torch/triton/CUDA versions, which optional packages import
#   2. selfcheck    python -m mlla_kernels.selfcheck: Triton vs torch backend, forward + every
#                   gradient, fp32/bf16/fp16, the configurations our backbones use
#   3. kernel_tests pytest tests/test_kernels (with CUDA, every Triton case runs COMPILED on the
#                   GPU, plus the real-shape @gpu cases) + tests/test_models/test_cuda_backbones.py
#                   (VMamba/Vim end to end, triton vs torch; needs mmengine)
#   3b. compile_tests torch.compile (Inductor) and torch.export of VMamba/Vim/HRVMamba on CUDA
#                   (tests/test_models/test_cuda_compile.py)
#   4. kernel_bench python -m mlla_kernels.benchmark --device cuda (VMamba-T/Vim-Ti scan shapes)
#   5. backbones    tools/analysis/benchmark_backbones.py --device cuda (time/memory vs resolution)
#   6. train_step   the same with --train at 512 px (forward + backward)
# and writes OUT_DIR/gpu_check.md, OUT_DIR/gpu_check.json and OUT_DIR/gpu_check_files.tar.gz
# (every log and each tool's own outputs). A step that fails, times out or cannot run is
# recorded in the report with its log tail; the script always goes on to the next step and
# exits 0 once the report is written (1 if it could not write it).
#
# Assumptions (a GPU machine may be offline and bare; nothing is downloaded):
#   - an NVIDIA GPU with its driver; a Python with a CUDA build of torch and triton:
#     $PYTHON if set, else ./.venv/bin/python (from `make setup`), else python3.
#   - the repo need not be pip-installed: this checkout (mlla_kernels/ and mlla_mm/) is put
#     first on PYTHONPATH.
#   - steps 1-4 need only torch + triton (+ pytest for step 3; pytest-xdist and pytest-timeout
#     are used when present). mmengine is needed by the backbone test and step 5; mmdet /
#     mmpretrain only add Swin-T / ViT-Ti to step 5 (skipped from it when missing).
#   - optional MLLA_WHEELS=DIR: wheels installed first with `pip install --no-index --no-deps
#     --target` into a temporary directory (e.g. mmengine and its pure-Python dependencies
#     addict, yapf, termcolor for an offline machine).
#   - GPU_CHECK_SELECT: the kernel tests' -k expression on a GPU (default 'not numba': the
#     CPU engines' cases are CI's); GPU_CHECK_BUDGET: seconds for all steps (default 570);
#     GPU_CHECK_SKIP: step names not to run (a rerun of the ones that failed).
#   - shapes are kept modest: kernel benchmark batch 1 and 8 (GPU default), backbones at
#     224/512/1024 px, batch 1, forward.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT_DIR=${1:-$ROOT/work_dirs/gpu_check}
BUDGET=${GPU_CHECK_BUDGET:-570}          # seconds for all steps; the report takes ~1 s more
mkdir -p "$OUT_DIR" || exit 1
OUT_DIR=$(cd "$OUT_DIR" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
STEPS="$WORK/steps.tsv"
: >"$STEPS"
START=$(date +%s)
cd "$ROOT" || exit 1

if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
elif [ -x "$ROOT/.venv/bin/python" ]; then PY=$ROOT/.venv/bin/python
else PY=python3
fi

# this checkout's code first
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
if [ -n "${MLLA_WHEELS:-}" ] && ls "$MLLA_WHEELS"/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$WORK/site" \
    "$MLLA_WHEELS"/*.whl >"$WORK/wheels.log" 2>&1 \
    && export PYTHONPATH="$PYTHONPATH:$WORK/site"
fi
export PYTHONUNBUFFERED=1
# one Triton cache for all steps: a kernel compiled once is reused by the later steps
export TRITON_CACHE_DIR=${TRITON_CACHE_DIR:-$WORK/triton_cache}
unset TRITON_INTERPRET MLLA_KERNELS_BACKEND

has() { "$PY" -c "import $1" >/dev/null 2>&1; }

record() {  # record NAME STATUS RC SECONDS NOTE COMMAND...
  local name=$1 status=$2 rc=$3 secs=$4 note=$5; shift 5
  local command="$*"
  command=${command//$'\t'/ }
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$secs" "$note" \
    "${command//$'\n'/ }" >>"$STEPS"
  echo "[gpu_check] $name: $status (${secs}s) $note"
}

run_step() {  # run_step NAME LIMIT_S COMMAND...: runs with a timeout, never aborts the script
  local name=$1 limit=$2; shift 2
  if [[ " ${GPU_CHECK_SKIP:-} " == *" $name "* ]]; then
    record "$name" skipped '' 0 "GPU_CHECK_SKIP" "$@"; return
  fi
  local left=$(( BUDGET - ($(date +%s) - START) ))
  if [ "$left" -lt 20 ]; then
    record "$name" skipped '' 0 "time budget spent" "$@"; return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "[gpu_check] $name (limit ${limit}s): $*"
  local t0 rc status
  t0=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" >"$WORK/$name.log" 2>&1
  rc=$?
  case $rc in
    0) status=ok ;;
    124|137) status=timeout ;;
    *) status=failed ;;
  esac
  record "$name" "$status" "$rc" $(( $(date +%s) - t0 )) "limit ${limit}s" "$@"
}

skip() { record "$1" skipped '' 0 "$2" "${@:3}"; }

# ---------------------------------------------------------------------------------------- 1. env
cat >"$WORK/env_info.py" <<'PYEOF'
import importlib, json, platform, sys
info = dict(python=sys.version.split()[0], executable=sys.executable, machine=platform.machine())
try:
    import torch
    info.update(torch=torch.__version__, cuda=torch.version.cuda,
                cuda_available=torch.cuda.is_available())
    if torch.cuda.is_available():
        info.update(gpu=torch.cuda.get_device_name(0),
                    capability='.'.join(map(str, torch.cuda.get_device_capability(0))),
                    gpu_count=torch.cuda.device_count())
except Exception as err:
    info['torch_error'] = repr(err)
for name in ('triton', 'pytest', 'xdist', 'pytest_timeout', 'mmengine', 'mmcv', 'mmdet',
             'mmseg', 'mmpretrain', 'mamba_ssm'):
    try:
        info[name] = getattr(importlib.import_module(name), '__version__', 'yes')
    except Exception:
        info[name] = None
print('ENV_JSON ' + json.dumps(info))
PYEOF
cat >"$WORK/env_info.sh" <<'SHEOF'
nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv \
  || echo "nvidia-smi: not available"
"$1" "$2"
SHEOF
run_step env 60 bash "$WORK/env_info.sh" "$PY" "$WORK/env_info.py"

CUDA_OK=0
"$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' >/dev/null 2>&1 \
  && CUDA_OK=1

# ---------------------------------------------------------------------------------- 2. selfcheck
if [ $CUDA_OK = 1 ] && has triton; then
  run_step selfcheck 120 "$PY" -m mlla_kernels.selfcheck --device cuda --json "$WORK/selfcheck.json"
else
  skip selfcheck "needs torch with CUDA and triton"
fi

# ------------------------------------------------------------------------------- 3. kernel tests
if has pytest; then
  # -v: one line per test as it ends, so a run cut by its time limit still names its failures
  TEST_ARGS=(-v -rfEs -p no:cacheprovider --junitxml="$WORK/kernel_tests.xml")
  has xdist && TEST_ARGS+=(-n 8)                # parallel compiles: 16 cores
  has pytest_timeout && TEST_ARGS+=(--timeout 150)
  # the numba (CPU) cases are CI's; on a GPU the minutes go to Triton. GPU_CHECK_SELECT='' keeps all
  [ $CUDA_OK = 1 ] && [ -n "${GPU_CHECK_SELECT-not numba}" ] \
    && TEST_ARGS+=(-k "${GPU_CHECK_SELECT-not numba}")
  TEST_PATHS=(tests/test_kernels)
  has mmengine && TEST_PATHS+=(tests/test_models/test_cuda_backbones.py)
  [ $CUDA_OK = 1 ] || echo "no CUDA: the kernel tests run under TRITON_INTERPRET (CPU)" \
    >"$WORK/kernel_tests.note"
  run_step kernel_tests 220 "$PY" -m pytest "${TEST_PATHS[@]}" "${TEST_ARGS[@]}"
else
  skip kernel_tests "pytest is not installed"
fi

# ---------------------------------------------------------------- 3b. Inductor compile + export
# Inductor's compiles of whole backbones take minutes: a step of its own, one process (no
# xdist), Inductor's compile workers in-process (its worker pool kept a killed run from ending)
if [ $CUDA_OK = 1 ] && has pytest && has mmengine; then
  COMPILE_ARGS=(-v -rfEs -p no:cacheprovider)
  has pytest_timeout && COMPILE_ARGS+=(--timeout 170)
  run_step compile_tests 200 env TORCHINDUCTOR_COMPILE_THREADS=1 \
    "$PY" -m pytest tests/test_models/test_cuda_compile.py "${COMPILE_ARGS[@]}"
else
  skip compile_tests "needs CUDA, pytest and mmengine" tests/test_models/test_cuda_compile.py
fi

# ------------------------------------------------------------------------- 4. kernel benchmark
if [ $CUDA_OK = 1 ]; then
  run_step kernel_bench 150 "$PY" -m mlla_kernels.benchmark --device cuda --batch 1,8 \
    --json "$WORK/kernel_benchmark.json"
else
  skip kernel_bench "needs CUDA"
fi

# ----------------------------------------------------------------------- 5. backbone benchmark
if [ $CUDA_OK = 1 ] && has mmengine; then
  BACKBONES=(MLLA-T VMamba-T Vim-Ti)
  has mmdet && BACKBONES+=(Swin-T)
  has mmpretrain && BACKBONES+=(ViT-Ti)
  # each case is a fresh process (~12-24 s on the H200 machine, mostly imports and compiles)
  run_step backbones 180 "$PY" tools/analysis/benchmark_backbones.py --device cuda \
    --backbones "${BACKBONES[@]}" --sizes 224 512 1024 --batch 1 --warmup 2 --repeat 5 \
    --timeout-per-case 40 --out-dir "$WORK" --stem backbone_scaling
  run_step train_step 100 "$PY" tools/analysis/benchmark_backbones.py --device cuda --train \
    --backbones "${BACKBONES[@]}" --sizes 512 --batch 1 --warmup 2 --repeat 5 \
    --timeout-per-case 40 --out-dir "$WORK" --stem train_step
else
  skip backbones "needs CUDA and mmengine" tools/analysis/benchmark_backbones.py
  skip train_step "needs CUDA and mmengine" tools/analysis/benchmark_backbones.py --train
fi

# -------------------------------------------------------------------------------------- report
"$PY" - "$WORK" "$OUT_DIR" "$(( $(date +%s) - START ))" <<'PYEOF'
import glob, json, os, re, sys, tarfile
work, out_dir, total = sys.argv[1], sys.argv[2], int(sys.argv[3])


def read(name, default=''):
    try:
        with open(os.path.join(work, name), errors='replace') as f:
            return f.read()
    except OSError:
        return default


def tail(text, lines=40):
    return '\n'.join(text.rstrip().splitlines()[-lines:])


steps = []
for line in read('steps.tsv').splitlines():
    name, status, rc, secs, note, command = (line.split('\t') + [''] * 6)[:6]
    steps.append(dict(name=name, status=status, rc=rc, seconds=int(secs or 0), note=note,
                      command=command, log_tail=tail(read(f'{name}.log'))))
report = dict(total_seconds=total, steps=steps)
env_line = re.search(r'^ENV_JSON (.*)$', read('env.log'), re.M)
report['env'] = json.loads(env_line.group(1)) if env_line else {}
selfcheck = read('selfcheck.json')
report['selfcheck'] = json.loads(selfcheck) if selfcheck else None
for step in ('kernel_tests', 'compile_tests'):
    lines = read(f'{step}.log').splitlines()
    summary = [l for l in lines if re.search(r'\d+ (passed|failed|error)', l)]
    # -v lines ('[gw3] [ 40%] FAILED tests/...') name a failure even when the run was cut
    failed = {m.group(2) for l in lines
              for m in [re.search(r'(^|\] )(?:FAILED|ERROR) (\S+)', l)] if m}
    report[step] = dict(summary=summary[-1].strip('= ') if summary else None,
                        failures=sorted(failed))
bench = read('kernel_benchmark.json')
report['kernel_benchmark'] = json.loads(bench) if bench else None
scaling = read('backbone_scaling.json')
report['backbones'] = json.loads(scaling) if scaling else None
# a failed self-check during any step means 'auto' ran the torch backend there
report['selfcheck_failures_seen'] = sorted({
    l.strip() for f in glob.glob(os.path.join(work, '*.log')) for l in open(f, errors='replace')
    if 'self-check FAILED' in l})

env = report['env']
md = ['# GPU check', '',
      f"{env.get('gpu', 'no GPU visible')} (capability {env.get('capability', '?')}), "
      f"torch {env.get('torch')}, CUDA {env.get('cuda')}, triton {env.get('triton')}, "
      f"Python {env.get('python')}; mmengine {env.get('mmengine')}, mmdet {env.get('mmdet')}, "
      f"mmpretrain {env.get('mmpretrain')}, mamba_ssm {env.get('mamba_ssm')}. "
      f'Total {total} s.', '',
      '| step | status | seconds | note |', '|---|---|---|---|']
md += [f"| {s['name']} | {'**' + s['status'] + '**' if s['status'] != 'ok' else 'ok'} | "
       f"{s['seconds']} | {s['note']} |" for s in steps]
if report['selfcheck_failures_seen']:
    md += ['', '**Self-check failures** (backend auto fell back to torch):', '']
    md += [f'- {l}' for l in report['selfcheck_failures_seen']]
if report['selfcheck']:
    md += ['', '## Self-check: Triton vs torch backend', '',
           '| operation | N | structure | u dtype | ok | worst | max abs err | max rel err | '
           'tolerance |', '|---|---|---|---|---|---|---|---|---|']
    for r in report['selfcheck']:
        md.append(f"| {r['op']} | {r['n_state']} | {r['structure'] or ''} | {r['dtypes']['u']} "
                  f"| {'yes' if r['ok'] else '**NO**'} | {r['exception'] or r['worst']} | "
                  f"{r['max_abs_err']:.2e} | {r['max_rel_err']:.2e} | {r['tolerance']:g} |")
for step in ('kernel_tests', 'compile_tests'):
    md += ['', f'## Tests: {step}', '', f"Summary: {report[step]['summary']}"]
    md += [f'- FAILED {l}' for l in report[step]['failures'][:40]]
if report['kernel_benchmark']:
    md += ['', '## Kernel benchmark', '', report['kernel_benchmark'].get('table', '')]
scaling_md = read('backbone_scaling.md')
if scaling_md:
    md += ['', '## Backbone benchmark', '', scaling_md]
train_md = read('train_step.md')
if train_md:
    md += ['', '## Training step', '', train_md]
md += ['', '## Log tails', '']
for s in steps:
    md += [f"<details><summary>{s['name']}: {s['status']} -- {s['command'][:200]}</summary>",
           '', '```', s['log_tail'], '```', '</details>', '']
with open(os.path.join(out_dir, 'gpu_check.md'), 'w') as f:
    f.write('\n'.join(md) + '\n')
with open(os.path.join(out_dir, 'gpu_check.json'), 'w') as f:
    json.dump(report, f, indent=1, default=str)
with tarfile.open(os.path.join(out_dir, 'gpu_check_files.tar.gz'), 'w:gz') as tar:
    for path in sorted(glob.glob(os.path.join(work, '*'))):
        if os.path.isfile(path):
            tar.add(path, arcname=os.path.basename(path))
print(f'[gpu_check] wrote {out_dir}/gpu_check.md, gpu_check.json, gpu_check_files.tar.gz '
      f'({total} s)')
PYEOF
rc=$?
rm -rf "$WORK"
exit $rc

#!/usr/bin/env bash
# Slurm: bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args]
# GPUS (default 8), GPUS_PER_NODE (8), CPUS_PER_TASK (5), SRUN_ARGS as in mmdet.
#
# Time limits and preemption: our runtimes' PreemptionHook makes training finish the
# current iteration, write work_dir/preempted_iter_N.pth and exit on SIGTERM or SIGUSR1.
# SIGNAL (default USR1@180) is passed as `srun --signal`: SLURM sends SIGUSR1 180 s
# before the time limit -- choose more than one iteration plus writing a checkpoint.
# In an sbatch script use `#SBATCH --signal=USR1@180` (without `B:`, which would signal
# only the batch shell). A preempted or cancelled job gets SIGTERM first and SIGKILL
# GraceTime/KillWait seconds later (ask your admins; 30 s by default). Continue with the
# same command plus --resume.
set -x
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
shift 4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
SIGNAL=${SIGNAL:-USR1@180}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHONPATH="$ROOT:${PYTHONPATH:-}" \
srun -p "${PARTITION}" \
    --job-name="${JOB_NAME}" \
    --gres=gpu:"${GPUS_PER_NODE}" \
    --ntasks="${GPUS}" \
    --ntasks-per-node="${GPUS_PER_NODE}" \
    --cpus-per-task="${CPUS_PER_TASK}" \
    --kill-on-bad-exit=1 \
    --signal="${SIGNAL}" \
    ${SRUN_ARGS} \
    python -u "$ROOT/tools/train.py" "${CONFIG}" --work-dir="${WORK_DIR}" --launcher=slurm "$@"

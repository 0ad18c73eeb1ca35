#!/usr/bin/env bash
# Train on a SLURM cluster: one `mt3 train --distributed` task per GPU, on every node of the job
# (docs/training.md §4). JAX reads the job's layout from SLURM (coordinator: the first node; each
# task gets the GPU of its local rank). The workdir must be on a filesystem every node shares.
#
# Usage: sbatch --nodes N scripts/train_slurm.sh MT3_TRAIN_OPTIONS...
#   sbatch --nodes 2 scripts/train_slurm.sh --gin_file gin/mt3.gin --workdir /shared/runs/mt3
# Set the venv with MT3 (default: mt3 on PATH) and the GPUs per node with --gpus-per-node and
# --ntasks-per-node (both 8 here). SLURM sends SIGTERM two minutes before the time limit: every
# task saves a checkpoint and exits 143, and the job is requeued; the requeued job resumes there.
# The same command line runs on one machine with scripts/train_local_processes.sh (tested).
#SBATCH --job-name=mt3-train
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=8
#SBATCH --time=24:00:00
#SBATCH --signal=TERM@120
#SBATCH --requeue
#SBATCH --output=mt3-train-%j.log
set -uo pipefail
read -ra mt3 <<< "${MT3:-mt3}"
srun "${mt3[@]}" train "$@" --distributed
status=$?
if ((status == 143)); then  # preempted or out of time, with a checkpoint saved: continue later
  scontrol requeue "$SLURM_JOB_ID"
fi
exit "$status"

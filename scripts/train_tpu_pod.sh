#!/usr/bin/env bash
# Train on a Cloud TPU pod slice: the same `mt3 train --distributed` on every worker (host) of
# the slice, started over SSH with gcloud (docs/training.md §4). JAX detects the slice; each
# worker drives its own chips. Install the repository (scripts/setup.sh, with jax[tpu]) on every
# worker first, and put the workdir and data on a filesystem all workers mount at the same path
# (Filestore NFS, or a gcsfuse mount).
#
# Usage: scripts/train_tpu_pod.sh TPU_NAME ZONE MT3_TRAIN_OPTIONS...
#   scripts/train_tpu_pod.sh my-v4-32 us-central2-b --gin_file gin/mt3.gin \
#       --workdir /mnt/shared/runs/mt3
# REPO (default: ~/mt3) is the checkout on the workers. Run it again to resume from the last
# checkpoint. The same command line runs on one machine with scripts/train_local_processes.sh.
set -euo pipefail
if (($# < 2)); then
  echo "usage: $0 TPU_NAME ZONE MT3_TRAIN_OPTIONS..." >&2
  exit 2
fi
name=$1 zone=$2
shift 2
repo=${REPO:-'~/mt3'}
gcloud compute tpus tpu-vm ssh "$name" --zone "$zone" --worker=all \
  --command="cd $repo && .venv/bin/mt3 train $(printf '%q ' "$@") --distributed"

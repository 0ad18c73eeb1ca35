#!/usr/bin/env bash
# Train with several processes on one machine, each with CPU devices of its own, the way a
# cluster runs them (docs/training.md): process i of N runs
#   mt3 train ARGS --coordinator localhost:PORT --num-processes N --process-id i
# and the processes exchange gradients over Gloo. tests/test_distributed.py runs this script.
#
# Usage: scripts/train_local_processes.sh MT3_TRAIN_OPTIONS...
#   NUM_PROCESSES=2 scripts/train_local_processes.sh --gin_file gin/tiny.gin --workdir runs/two
# Environment: NUM_PROCESSES (default 2), DEVICES_PER_PROCESS (2), PORT (8476, a free port),
#   MT3 (the command that runs mt3; default `mt3`).
# Process i's pid is printed to stderr as "process i: pid P". SIGTERM and SIGINT are passed on to
# every process (they save a checkpoint and stop together); the exit status is the first
# failing process's, or 0. Running the same command again resumes from the last checkpoint.
set -uo pipefail
processes=${NUM_PROCESSES:-2}
devices=${DEVICES_PER_PROCESS:-2}
port=${PORT:-8476}
read -ra mt3 <<< "${MT3:-mt3}"
export JAX_PLATFORMS=${JAX_PLATFORMS:-cpu}
export XLA_FLAGS="--xla_force_host_platform_device_count=$devices ${XLA_FLAGS:-}"

pids=()
trap 'kill -TERM "${pids[@]}" 2>/dev/null' TERM INT
for ((i = 0; i < processes; i++)); do
  "${mt3[@]}" train "$@" --coordinator "localhost:$port" --num-processes "$processes" \
    --process-id "$i" &
  pids+=("$!")
  echo "process $i: pid $!" >&2
done
status=0
for pid in "${pids[@]}"; do
  while true; do
    wait "$pid"
    code=$?
    kill -0 "$pid" 2>/dev/null || break  # wait returned for a trapped signal: wait again
  done
  if ((status == 0 && code != 0)); then status=$code; fi
done
exit "$status"

"""Multi-process training: starting JAX's distributed runtime, and what the processes agree on.

A multi-process run has one process per host (a TPU VM, a GPU node) or per accelerator (JAX's
default under SLURM), all running the same `mt3 train --distributed` command on a workdir they
share (a shared filesystem). Every process
builds the whole mesh over all devices, reads only its rows of each global batch
(mt3.data.pipeline.ProcessRows), and takes part in every step and every checkpoint save; process
0 alone writes the run's config, metrics and progress lines (docs/training.md).

On CPUs the processes exchange gradients through Gloo (``jax_cpu_collectives_implementation``),
which is what lets two processes on one machine train together (tests/test_distributed.py).
"""

from __future__ import annotations

import functools

import jax
import numpy as np
from flax import nnx

from mt3.errors import UsageError

# Seconds a process waits for the others at start-up, and for a silent peer before it stops.
INITIALIZATION_TIMEOUT_SECONDS = 300
HEARTBEAT_TIMEOUT_SECONDS = 30


def check_options(
    coordinator: str | None, num_processes: int | None, process_id: int | None
) -> None:
    """The explicit settings are all given or none (JAX then detects the cluster: SLURM, TPU pod
    slices, Open MPI, ...); UsageError names the option that is wrong."""
    given = [x is not None for x in (coordinator, num_processes, process_id)]
    if any(given) and not all(given):
        raise UsageError(
            "--coordinator, --num-processes and --process-id go together; give all three, or "
            "none to let JAX detect the cluster (SLURM, TPU pods)"
        )
    if not any(given):
        return
    host, _, port = coordinator.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(
            f"--coordinator must be HOST:PORT (e.g. 10.0.0.1:8476), got {coordinator!r}"
        )
    if num_processes < 1:
        raise UsageError(f"--num-processes must be at least 1, got {num_processes}")
    if not 0 <= process_id < num_processes:
        raise UsageError(
            f"--process-id must be in 0..{num_processes - 1} (--num-processes {num_processes}), "
            f"got {process_id}"
        )


def initialize(
    coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> None:
    """Join the run's processes (``jax.distributed.initialize``); process 0 serves the
    coordinator at ``coordinator`` (HOST:PORT, the same for every process). Without arguments
    JAX reads the cluster's environment."""
    check_options(coordinator, num_processes, process_id)
    jax.distributed.initialize(
        coordinator, num_processes, process_id,
        initialization_timeout=INITIALIZATION_TIMEOUT_SECONDS,
        heartbeat_timeout_seconds=HEARTBEAT_TIMEOUT_SECONDS,
    )  # fmt: skip


def is_primary() -> bool:
    """Whether this process writes the run's files (process 0; the only one in a local run)."""
    return jax.process_index() == 0


def agreed_signal(number: int | None) -> int | None:
    """The signal any process has received (None if none): all processes stop at the same step,
    since saving a checkpoint takes them all. A collective: every process calls it."""
    if jax.process_count() == 1:
        return number
    from jax.experimental import multihost_utils

    numbers = multihost_utils.process_allgather(np.int32(number or 0))
    return int(np.max(numbers)) or None


def host_copy(tree):
    """NumPy copies of a tree of (possibly multi-process) arrays, whole on every process. A
    collective when the arrays span processes: every process calls it."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    return jax.tree.map(lambda x: np.asarray(multihost_utils.process_allgather(x, tiled=True)),
                        tree)  # fmt: skip


def place(state, shardings):
    """``jax.device_put(state, shardings)`` for shardings that span processes: each process puts
    its copy of the (identical) values on its own devices. ``shardings`` holds a sharding where
    ``state`` (an nnx.State) holds a Variable."""
    if jax.process_count() == 1:
        return jax.device_put(state, shardings)

    def put(value, sharding):
        if jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):  # RNG keys: as their data
            data = put(jax.random.key_data(value), sharding)
            wrap = functools.partial(jax.random.wrap_key_data, impl=jax.random.key_impl(value))
            return jax.jit(wrap, out_shardings=sharding)(data)
        host = np.asarray(value)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    def put_variable(variable, sharding):
        return variable.replace(value=put(variable.get_value(), sharding))

    return jax.tree.map(
        put_variable, state, shardings, is_leaf=lambda x: isinstance(x, nnx.Variable)
    )

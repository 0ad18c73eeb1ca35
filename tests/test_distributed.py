"""Multi-process training for real: two `mt3 train` processes on this machine (2 CPU devices
each, Gloo collectives), started by scripts/train_local_processes.sh as docs/training.md says,
train together, write and restore checkpoints together, survive the loss of one process, and
log the losses of one process training on the same global batch."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mt3.data.prepare import prepare

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "train_local_processes.sh"
STEPS = 8


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def losses(workdir: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in open(workdir / "metrics.jsonl")]
    return {row["step"]: row["loss"] for row in rows if "loss" in row}


def launch(gin: Path, workdir: Path, log: Path, *options: str) -> subprocess.Popen:
    """The two-process run of the training guide, with this interpreter's mt3."""
    environment = {**os.environ, "NUM_PROCESSES": "2", "DEVICES_PER_PROCESS": "2",
                   "PORT": str(free_port()), "MT3": f"{sys.executable} -m mt3"}  # fmt: skip
    return subprocess.Popen(
        ["bash", str(SCRIPT), "--gin_file", str(gin), "--workdir", str(workdir), *options],
        cwd=REPO, env=environment, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip


@pytest.fixture(scope="module")
def gin(tmp_path_factory):
    root = tmp_path_factory.mktemp("distributed")
    for kind in ("piano", "band"):
        prepare(f"synth-{kind}", None, root / f"synth-{kind}", workers=1, progress=False,
                count=10, seconds=6.0)  # fmt: skip
    path = root / "run.gin"
    path.write_text(
        f"DataConfig.data_root = '{root}'\nDataConfig.mixture = 'synth-piano,synth-band'\n"
        f"TrainConfig.variant = 'tiny'\nTrainConfig.batch_size = 4\nTrainConfig.steps = {STEPS}\n"
        "TrainConfig.log_every_steps = 1\nTrainConfig.checkpoint_every_steps = 2\n"
    )
    return path


def process_pids(log: Path) -> dict[int, int]:
    """{0: pid, 1: pid} from the script's "process I: pid P" lines."""
    lines = [line for line in log.read_text().splitlines() if line.startswith("process ")]
    return {int(i): int(pid) for i, pid in (line[8:].split(": pid ") for line in lines)}


def wait_for(condition, script: subprocess.Popen, seconds: float = 300) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline and script.poll() is None and not condition():
        time.sleep(0.05)


@pytest.fixture
def reaper(tmp_path):
    """Kills what a failed test leaves running: the processes listed in tmp_path/two.log."""
    yield
    log = tmp_path / "two.log"
    for pid in process_pids(log).values() if log.is_file() else ():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.slow
def test_two_processes_train_resume_and_match_one(gin, tmp_path, reaper):
    # One process, one device: the reference losses.
    reference = tmp_path / "one"
    subprocess.run([sys.executable, "-m", "mt3", "train", "--gin_file", str(gin), "--workdir",
                    str(reference)], check=True, capture_output=True, cwd=REPO)  # fmt: skip

    # Two processes; process 1 is killed after step 3 is logged, and process 0 stops on its own.
    workdir, log = tmp_path / "two", tmp_path / "two.log"
    script = launch(gin, workdir, log)
    wait_for(lambda: (workdir / "metrics.jsonl").is_file() and len(losses(workdir)) >= 3, script)
    os.kill(process_pids(log)[1], signal.SIGKILL)
    assert script.wait(timeout=120) != 0, "the survivor did not stop"
    assert len(losses(workdir)) < STEPS, "the run ended before it could be killed"
    steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
    assert steps and steps[-1] < STEPS

    # Both again: they resume from the newest checkpoint. SIGTERM to process 1 alone (a
    # preemption) stops both at one step, with a checkpoint, exit status 143.
    script = launch(gin, workdir, log)
    resumed = f"resumed from {workdir / 'checkpoints'} at step {steps[-1]}"
    wait_for(lambda: f"step {steps[-1] + 1}/{STEPS}" in log.read_text(), script)
    assert resumed in log.read_text()
    os.kill(process_pids(log)[1], signal.SIGTERM)
    assert script.wait(timeout=120) == 128 + signal.SIGTERM, log.read_text()[-3000:]
    stopped = [line for line in log.read_text().splitlines() if "stopped by SIGTERM" in line]
    assert len(stopped) == 1, log.read_text()[-3000:]  # process 0 reports; process 1 is quiet
    step = int(stopped[0].split("at step ")[1].split(";")[0])
    assert step < STEPS and (workdir / "checkpoints" / str(step)).is_dir()

    # Both again: they finish the run.
    script = launch(gin, workdir, log)
    assert script.wait(timeout=300) == 0, log.read_text()[-3000:]
    output = log.read_text()
    assert f"resumed from {workdir / 'checkpoints'} at step {step}" in output
    assert output.count(f"done at step {STEPS}") == 1
    # Each process wrote its part of the checkpoint.
    final = workdir / "checkpoints" / str(STEPS) / "state"
    assert (final / "ocdbt.process_0").is_dir() and (final / "ocdbt.process_1").is_dir()

    # The same global batch, seed and losses as one process (the 8-device test's tolerance).
    got, expected = losses(workdir), losses(reference)
    assert sorted(got) == list(range(1, STEPS + 1))
    np.testing.assert_allclose([got[s] for s in expected], list(expected.values()), rtol=1e-5)
    assert [r["step"] for r in map(json.loads, open(workdir / "metrics.jsonl"))] == sorted(got)


@pytest.mark.slow
def test_parameters_sharded_across_processes_save_and_resume(gin, tmp_path, reaper):
    """FSDP over both processes' devices: each process holds part of every large array, writes
    it, and reads it back on resume; the losses are still one process's."""
    reference = tmp_path / "one"
    steps = ["--gin_param", "TrainConfig.steps = 4"]
    subprocess.run([sys.executable, "-m", "mt3", "train", "--gin_file", str(gin), "--workdir",
                    str(reference), *steps], check=True, capture_output=True, cwd=REPO)  # fmt: skip
    workdir, log = tmp_path / "fsdp", tmp_path / "two.log"
    for last in (2, 4):
        options = ("--gin_param", "TrainConfig.fsdp = True",
                   "--gin_param", f"TrainConfig.steps = {last}")  # fmt: skip
        assert launch(gin, workdir, log, *options).wait(timeout=300) == 0, log.read_text()[-3000:]
    assert f"resumed from {workdir / 'checkpoints'} at step 2" in log.read_text()
    got, expected = losses(workdir), losses(reference)
    assert sorted(got) == [1, 2, 3, 4]
    np.testing.assert_allclose([got[s] for s in expected], list(expected.values()), rtol=1e-5)


@pytest.mark.slow
def test_distributed_detects_a_slurm_job(gin, tmp_path):
    """`mt3 train --distributed`, as scripts/train_slurm.sh runs it in each task, with the
    environment SLURM gives two tasks on one node: JAX finds the coordinator and the process
    ids there, and the two processes log one process's losses."""
    reference = tmp_path / "one"
    steps = ["--gin_param", "TrainConfig.steps = 2"]
    subprocess.run([sys.executable, "-m", "mt3", "train", "--gin_file", str(gin), "--workdir",
                    str(reference), *steps], check=True, capture_output=True, cwd=REPO)  # fmt: skip
    port = free_port()
    tasks = []
    for task in range(2):
        environment = {**os.environ, "SLURM_JOB_ID": "4242", "SLURM_STEP_NODELIST": "localhost",
                       "SLURM_NTASKS": "2", "SLURM_PROCID": str(task),
                       "SLURM_LOCALID": str(task), "JAX_COORDINATOR_PORT": str(port),
                       "JAX_PLATFORMS": "cpu",
                       "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}  # fmt: skip
        command = [sys.executable, "-m", "mt3", "train", "--gin_file", str(gin), "--workdir",
                   str(tmp_path / "slurm"), *steps, "--distributed"]  # fmt: skip
        tasks.append(
            subprocess.Popen(
                command,
                cwd=REPO,
                env=environment,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        )
    outputs = [task.communicate(timeout=300)[0] for task in tasks]
    assert [task.returncode for task in tasks] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    assert "done at step 2" in outputs[0] and "done at step" not in outputs[1]
    got, expected = losses(tmp_path / "slurm"), losses(reference)
    np.testing.assert_allclose([got[s] for s in expected], list(expected.values()), rtol=1e-5)


@pytest.mark.parametrize(
    "options, message",
    [
        (("--coordinator", "localhost:1234"), "go together"),
        (("--coordinator", "localhost", "--num-processes", "2", "--process-id", "0"),
         "--coordinator must be HOST:PORT"),
        (("--coordinator", "h:99999", "--num-processes", "2", "--process-id", "0"),
         "--coordinator must be HOST:PORT"),
        (("--coordinator", "h:1234", "--num-processes", "0", "--process-id", "0"),
         "--num-processes must be at least 1"),
        (("--coordinator", "h:1234", "--num-processes", "2", "--process-id", "2"),
         "--process-id must be in 0..1"),
    ],
)  # fmt: skip
def test_bad_distributed_options_are_one_line(tmp_path, run_cli, options, message):
    status, _, err = run_cli("train", "--workdir", tmp_path / "w", *options)
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "w").exists()


def test_launch_scripts_run_the_tested_command():
    """The cluster scripts run the command the tests run, with their launcher's flags; the guide
    names each of them."""
    guide = (REPO / "docs" / "training.md").read_text()
    for name in ("train_local_processes.sh", "train_slurm.sh", "train_tpu_pod.sh"):
        path = REPO / "scripts" / name
        assert os.access(path, os.X_OK) and f"scripts/{name}" in guide
        subprocess.run(["bash", "-n", str(path)], check=True)
    local = SCRIPT.read_text()
    assert '"${mt3[@]}" train "$@" --coordinator "localhost:$port"' in local
    assert (
        'srun "${mt3[@]}" train "$@" --distributed' in (REPO / "scripts/train_slurm.sh").read_text()
    )
    tpu = (REPO / "scripts" / "train_tpu_pod.sh").read_text()
    assert "--worker=all" in tpu and "mt3 train $(printf '%q ' \"$@\") --distributed" in tpu
    result = subprocess.run(["bash", str(REPO / "scripts/train_tpu_pod.sh")], capture_output=True)
    assert result.returncode == 2 and b"usage:" in result.stderr

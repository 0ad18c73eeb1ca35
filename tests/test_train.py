"""The training loop: a run, resuming after an interruption (same losses step for step), SIGKILL,
and the 8-device data-parallel step against the single-device step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mt3.config import VARIANTS, ConfigError, DataConfig, RunConfig, TrainConfig, get_variant
from mt3.data.prepare import prepare
from mt3.train.train import train

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("train-data")
    for kind in ("piano", "band"):
        prepare(f"synth-{kind}", None, root / f"synth-{kind}", workers=1, progress=False,
                count=10, seconds=6.0)  # fmt: skip
    return root


def config(data_root, variant="tiny", **overrides):
    """A RunConfig of the tiny network on the module's two generated datasets."""
    train_config = dict(variant=variant, batch_size=2, log_every_steps=1, checkpoint_every_steps=2)
    data = DataConfig(data_root=str(data_root), mixture="synth-piano,synth-band")
    return RunConfig(get_variant(variant), data, TrainConfig(**{**train_config, **overrides}))


def losses(workdir):
    return [(r["step"], r["loss"]) for r in map(json.loads, open(workdir / "metrics.jsonl"))]


def test_resume_reproduces_the_uninterrupted_run(data_root, tmp_path):
    whole = tmp_path / "whole"
    train(config(data_root, steps=4), whole)
    parts = tmp_path / "parts"
    train(config(data_root, steps=2), parts)
    train(config(data_root, steps=4), parts)  # resumes at step 2
    assert losses(parts) == losses(whole)
    assert (whole / "config.json").is_file()
    assert sorted(p.name for p in (whole / "checkpoints").iterdir() if p.name.isdigit()) == [
        "2",
        "4",
    ]
    a = [r["loss"] for r in map(json.loads, open(whole / "metrics.jsonl"))]
    assert all(np.isfinite(a))


def test_cli_and_sigkill_resume(data_root, tmp_path):
    gin = tmp_path / "run.gin"
    gin.write_text(
        f"DataConfig.data_root = '{data_root}'\nDataConfig.mixture = 'synth-piano,synth-band'\n"
        "TrainConfig.variant = 'tiny'\nTrainConfig.batch_size = 2\nTrainConfig.steps = 8\n"
        "TrainConfig.log_every_steps = 1\nTrainConfig.checkpoint_every_steps = 2\n"
    )
    command = [sys.executable, "-m", "mt3", "train", "--gin_file", str(gin)]
    reference = tmp_path / "reference"
    subprocess.run([*command, "--workdir", str(reference)], check=True, capture_output=True)
    killed = tmp_path / "killed"
    process = subprocess.Popen([*command, "--workdir", str(killed)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline:
        if (killed / "metrics.jsonl").is_file() and len(losses(killed)) >= 5:
            break
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    before = losses(killed)
    assert len(before) < 8, "the run ended before it could be killed"
    subprocess.run([*command, "--workdir", str(killed)], check=True, capture_output=True)
    after = losses(killed)
    # Steps logged after the last checkpoint are logged again on resume; the values agree.
    merged = dict(after)
    assert sorted(merged) == list(range(1, 9))
    assert merged == dict(losses(reference))


def test_checkpoint_of_two_devices_loads_on_one(data_root, tmp_path):
    """`mt3 demo` trains over 2 host devices; `mt3 transcribe --checkpoint RUN` then runs on 1."""
    from mt3.model.store import load_model

    environment = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    bindings = [f"DataConfig.data_root = '{data_root}'", "DataConfig.mixture = 'synth-piano'",
                "TrainConfig.steps = 1", "TrainConfig.batch_size = 2"]  # fmt: skip
    command = [sys.executable, "-m", "mt3", "train", "--workdir", str(tmp_path / "run"),
               "--variant", "tiny"]  # fmt: skip
    for binding in bindings:
        command += ["--gin_param", binding]
    subprocess.run(command, check=True, capture_output=True, env=environment)
    model = load_model(tmp_path / "run")
    assert model.config.name == "tiny"


EIGHT_DEVICES = """
import jax, jax.numpy as jnp, numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from mt3.config import RunConfig
from mt3.train.train import build, state_shardings, train_step_fn
rng = np.random.default_rng(0)
batch = {"audio": rng.normal(size=(8, 32768)).astype(np.float32) * 0.1,
         "num_valid_frames": np.full(8, 256, np.int32),
         "targets": np.concatenate([rng.integers(3, 1391, (8, 40)), np.ones((8, 1)),
                                    np.zeros((8, 983))], 1).astype(np.int32)}
results = []
cases = ((jax.devices()[:1], 1, False), (jax.devices(), 1, False), (jax.devices(), 2, False),
         (jax.devices(), 1, True))
for devices, model_axis, fsdp in cases:
    mesh = Mesh(np.array(devices).reshape(-1, model_axis), ("data", "model"))
    model, optimizer = build(RunConfig())
    graphdef, state = nnx.split((model, optimizer))
    shardings = state_shardings(state, mesh, fsdp)
    step = jax.jit(train_step_fn(graphdef, 1e-4, 0),
                   in_shardings=(shardings, NamedSharding(mesh, P("data")), None),
                   out_shardings=(shardings, NamedSharding(mesh, P())))
    sharded = {k: jax.device_put(v, NamedSharding(mesh, P("data"))) for k, v in batch.items()}
    state, metrics = step(jax.device_put(state, shardings), sharded, 1)
    if model_axis == 2:  # the MLP kernels really are split over the model axis
        spec = state[0]["encoder"]["layers_0"]["mlp"]["wi_0"]["kernel"].value.sharding.spec
        assert tuple(spec) == (None, "model"), spec
    if fsdp:  # parameters and Adafactor statistics are split over the 8 data devices
        kernel = state[0]["decoder"]["logits_dense"]["kernel"].value
        assert kernel.sharding.spec == P(None, "data"), kernel.sharding.spec
        assert kernel.addressable_shards[0].data.shape == (128, 192)
        statistics = [x for x in jax.tree.leaves(state[1]) if "data" in tuple(x.sharding.spec)]
        assert statistics, "no optimizer statistic is sharded"
    kernel = state[0]["decoder"]["logits_dense"]["kernel"].value
    results.append((float(metrics["loss"]), np.asarray(kernel)))
assert len(jax.devices()) == 8
print([r[0] for r in results])
for loss, kernel in results[1:]:  # 8-way data parallel; 4 data x 2 tensor parallel; FSDP
    np.testing.assert_allclose(results[0][0], loss, rtol=1e-5)
    np.testing.assert_allclose(results[0][1], kernel, rtol=1e-4, atol=1e-6)
print("OK")
"""


def test_eight_device_step_matches_one_device():
    environment = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    result = subprocess.run(
        [sys.executable, "-c", EIGHT_DEVICES], capture_output=True, text=True, env=environment,
        cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("OK")


def test_evaluate_a_training_run(data_root, tmp_path, run_cli):
    workdir = tmp_path / "run"
    train(config(data_root, steps=2), workdir)
    status, out, err = run_cli(
        "evaluate", "--checkpoint", workdir, "--data", data_root / "synth-band", "--split",
        "validation", "--limit", "1", "--batch-size", "2", "--out", tmp_path / "eval",
        "--format", "midi,png",
    )  # fmt: skip
    assert status == 0, err
    assert "Onset F1" in out
    scores = json.loads((tmp_path / "eval" / "scores.json").read_text())
    assert (
        len(scores["recordings"]) == 1 and "Onset + offset + program F1 (full)" in scores["metrics"]
    )
    assert list((tmp_path / "eval").glob("*.png"))
    status, _, err = run_cli(
        "evaluate", "--checkpoint", tmp_path, "--data", data_root / "synth-band"
    )
    assert status == 2 and "not an mt3 checkpoint" in err

    # `mt3 transcribe` takes the training run too (its latest checkpoint).
    from mt3.data.pipeline import SplitSource
    from mt3.render import write_wav

    write_wav(SplitSource(data_root / "synth-band", "test")[0].float_audio(), 16000,
              tmp_path / "take.wav")  # fmt: skip
    status, _, err = run_cli(
        "transcribe", tmp_path / "take.wav", "--checkpoint", workdir, "-o", tmp_path / "out"
    )
    assert status == 0, err
    assert (tmp_path / "out" / "take.mid").is_file()


@pytest.mark.parametrize("name", ["tiny", "demo", "mt3", "ismir2021", "finetune"])
def test_gin_files_parse_and_say_how_to_run(name):
    import gin

    path = REPO / "gin" / f"{name}.gin"
    header = path.read_text().split("\n\n")[0]
    assert "# Command:" in header and "# Hardware:" in header and "# Expect" in header
    gin.clear_config()
    try:
        gin.parse_config_files_and_bindings([str(path)], [])
        assert TrainConfig().variant in VARIANTS
        assert "TrainConfig.model" not in path.read_text()
    finally:
        gin.clear_config()


def test_evaluation_during_training_and_curves(data_root, tmp_path, run_cli):
    gin = tmp_path / "run.gin"
    gin.write_text(
        f"TrainConfig.variant = 'tiny'\nDataConfig.data_root = '{data_root}'\n"
        "DataConfig.mixture = 'synth-piano'\nTrainConfig.batch_size = 2\nTrainConfig.steps = 2\n"
        "TrainConfig.log_every_steps = 1\nTrainConfig.eval_every_steps = 2\n"
        "TrainConfig.eval_limit = 1\n"
    )
    status, out, err = run_cli("train", "--gin_file", gin, "--workdir", tmp_path / "w", "--plot")
    assert status == 0, err
    rows = [json.loads(line) for line in open(tmp_path / "w" / "metrics.jsonl")]
    assert any("eval/synth-piano/Onset F1" in row for row in rows)
    assert (tmp_path / "w" / "curves.png").stat().st_size > 0


def test_tensorboard_event_encoding(tmp_path):
    import struct

    from mt3.train.tensorboard import EventWriter, crc32c

    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    writer = EventWriter(tmp_path)
    writer.scalars(7, {"train/loss": 2.5})
    data = writer.path.read_bytes()
    records, offset = [], 0
    while offset < len(data):
        (length,) = struct.unpack_from("<Q", data, offset)
        records.append(data[offset + 12 : offset + 12 + length])
        offset += 12 + length + 4
    assert len(records) == 2 and b"brain.Event:2" in records[0]
    event = records[1]
    assert event[:1] == b"\x09" and struct.unpack_from("<d", event, 1)[0] > 1e9  # wall_time
    assert event[9:11] == b"\x10\x07"  # step 7
    assert b"train/loss" in event and struct.pack("<f", 2.5) in event


def test_paper_table(samples, tmp_path, run_cli):
    from flax import nnx

    from mt3.model.store import save_model
    from mt3.model.t5 import Transformer

    prepare("maestro", samples("maestro"), tmp_path / "data" / "maestro", workers=1,
            progress=False)  # fmt: skip
    save_model(Transformer(get_variant("tiny"), rngs=nnx.Rngs(0)), tmp_path / "ckpt")
    status, out, err = run_cli(
        "evaluate", "--checkpoint", tmp_path / "ckpt", "--paper-table", tmp_path / "data",
        "--split", "train", "--limit", "1", "--batch-size", "2",
    )  # fmt: skip
    assert status == 0, err
    lines = [line for line in out.splitlines() if line.startswith("|")]
    assert lines[0] == "| metric | maestro | cerberus4 | guitarset | musicnet | slakh | urmp |"
    onset = next(line for line in lines if line.startswith("| Onset F1 |"))
    cells = [c.strip() for c in onset.strip("|").split("|")][1:]
    assert cells[0].endswith("(0.946)") and cells[0][0].isdigit()  # ours, then the paper's
    assert cells[1] == "- (0.919)"


def test_learning_rate_schedules():
    from mt3.train.optim import learning_rate_schedule

    assert learning_rate_schedule(1e-3) == 1e-3  # MT3: constant
    warm = learning_rate_schedule(1e-2, "constant", warmup=10)
    assert float(warm(0)) == 0 and np.isclose(float(warm(5)), 5e-3) and np.isclose(warm(50), 1e-2)
    cosine = learning_rate_schedule(1e-2, "cosine", warmup=10, steps=110)
    assert np.isclose(float(cosine(10)), 1e-2) and np.isclose(float(cosine(60)), 5e-3)
    assert float(cosine(110)) == 0
    with pytest.raises(ConfigError, match="schedule"):
        TrainConfig(schedule="linear")


def test_time_init_orders_the_shift_rows():
    from mt3.train.train import build
    from mt3.vocab import vocabulary

    plain, _ = build(RunConfig())
    timed, _ = build(RunConfig(train=TrainConfig(time_init=True)))
    first, last = vocabulary("mt3").id_range("shift")
    rows = np.asarray(timed.decoder.token_embedder.embedding.get_value())
    before = np.asarray(plain.decoder.token_embedder.embedding.get_value())
    np.testing.assert_array_equal(rows[last + 1 :], before[last + 1 :])  # other tokens: as drawn
    shifts = rows[first + 1 : first + 206]  # 10 ms ... 2.05 s
    unit = shifts / np.linalg.norm(shifts, axis=1, keepdims=True)
    assert np.mean(np.sum(unit[1:] * unit[:-1], axis=1)) > 0.95  # 10 ms apart: alike
    assert np.mean(np.abs(np.sum(unit[100:] * unit[:-100], axis=1))) < 0.5  # 1 s apart: not
    assert np.isclose(np.sqrt(np.mean(shifts**2)), 1.0, atol=0.05)  # the embedding scale
    kernel = np.asarray(timed.decoder.logits_dense.kernel.get_value())[:, first + 1 : first + 206]
    np.testing.assert_allclose(kernel.T, shifts / np.sqrt(128), rtol=1e-6)


@pytest.mark.parametrize(
    "option, message",
    [
        (("--gin_param", "TrainConfig.steps = 0"), "steps must be at least 1"),
        (("--gin_param", "TrainConfig.stepz = 10"), "doesn't have a parameter named 'stepz'"),
        (("--gin_file", "missing.gin"), "missing.gin: no such gin file"),
    ],
)
def test_bad_training_config_is_one_line(tmp_path, run_cli, option, message):
    status, _, err = run_cli("train", "--workdir", tmp_path / "w", *option)
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "w").exists()


def test_init_from_a_checkpoint_or_a_run(data_root, tmp_path):
    from flax import nnx

    from mt3.model.store import load_model, save_model
    from mt3.train.train import TrainingError, build

    train(config(data_root, steps=2), tmp_path / "a")
    source = load_model(tmp_path / "a")  # a training run's latest step
    save_model(source, tmp_path / "ckpt")  # and the same as an mt3 checkpoint folder
    expected = nnx.to_pure_dict(nnx.state(source, nnx.Param))
    for origin in (tmp_path / "a", tmp_path / "ckpt"):
        model, _ = build(config(data_root, init_from=str(origin), time_init=True))
        got = nnx.to_pure_dict(nnx.state(model, nnx.Param))
        for a, b in zip(jax_leaves(expected), jax_leaves(got), strict=True):
            np.testing.assert_array_equal(a, b)  # params only; time_init does not override
    fresh, _ = build(config(data_root))
    assert not np.array_equal(
        jax_leaves(nnx.to_pure_dict(nnx.state(fresh, nnx.Param)))[0], jax_leaves(expected)[0]
    )
    with pytest.raises(TrainingError, match="do not fit"):
        build(config(data_root, variant="mt3", init_from=str(tmp_path / "ckpt")))


def jax_leaves(tree):
    import jax

    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_fine_tune_on_a_folder_dataset_with_evaluation(data_root, write_pair, tmp_path, run_cli):
    """A user's `folder` dataset prepared into data/mine is trained on and evaluated from
    data/mine (evaluation used to look for data/folder, the manifest's dataset name)."""
    from mt3.model.store import load_model, save_model

    raw = tmp_path / "takes"
    for index in range(3):
        write_pair(raw, f"take{index}", seconds=2.0, program=40)
    root = tmp_path / "data"
    assert run_cli("prepare", "folder", "--raw", raw, "--out", root / "mine")[0] == 0
    train(config(data_root, steps=1), tmp_path / "base")
    save_model(load_model(tmp_path / "base"), tmp_path / "base-model")
    status, out, err = run_cli(
        "train", "--workdir", tmp_path / "tuned", "--variant", "tiny",
        "--gin_param", f"DataConfig.data_root = '{root}'",
        "--gin_param", "DataConfig.mixture = 'mine'",
        "--gin_param", f"TrainConfig.init_from = '{tmp_path / 'base-model'}'",
        "--gin_param", "TrainConfig.steps = 2", "--gin_param", "TrainConfig.batch_size = 2",
        "--gin_param", "TrainConfig.eval_every_steps = 2",
        "--gin_param", "TrainConfig.eval_limit = 1",
        "--gin_param", "TrainConfig.eval_split = 'train'",
    )  # fmt: skip
    assert status == 0, err
    rows = [json.loads(line) for line in open(tmp_path / "tuned" / "metrics.jsonl")]
    assert any("eval/mine/Onset F1" in row for row in rows)
    saved = json.loads((tmp_path / "tuned" / "config.json").read_text())
    assert saved["data"]["mixture"] == "mine" and saved["train"]["init_from"].endswith("base-model")
    assert (
        (tmp_path / "tuned" / "config.gin").read_text().startswith("TrainConfig.variant = 'tiny'")
    )

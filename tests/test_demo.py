"""`mt3 demo`: data generated when missing, training, evaluation, and the held-out example, with
every file it promises; a mixture naming real data that is not prepared fails in one line."""

from __future__ import annotations

import json

import mido

from mt3 import demo


def test_demo_runs_every_stage(tmp_path, run_cli, monkeypatch):
    monkeypatch.setitem(demo.SYNTHETIC, "synth-piano", {"count": 10, "seconds": 5.0, "workers": 1})
    monkeypatch.setenv("XLA_FLAGS", "")  # the demo asks for one device per core: undo after
    workdir = tmp_path / "run"
    command = (
        "demo", "--workdir", workdir, "--data", tmp_path / "data",
        "--gin_param", "DataConfig.mixture = 'synth-piano'",
        "--gin_param", "TrainConfig.steps = 2", "--gin_param", "TrainConfig.batch_size = 2",
    )  # fmt: skip
    status, out, err = run_cli(*command)
    assert status == 0, err
    assert (tmp_path / "data" / "synth-piano" / "manifest.json").is_file()  # generated
    summary = json.loads((workdir / "demo.json").read_text())
    assert summary["config"]["train"]["steps"] == 2
    assert summary["config"]["data"]["target_length"] > 0
    assert set(summary["seconds"]) == {"data", "train", "evaluate", "transcribe", "total"}
    assert "Onset F1" in summary["validation"]["synth-piano"]
    assert (workdir / "eval" / "synth-piano" / "scores.json").is_file()
    example = summary["example"]
    assert example["id"].startswith("piano-0-") and "Onset F1" in example["scores"]
    suffixes = sorted(p.name.removeprefix(example["id"]) for p in (workdir / "example").iterdir())
    assert suffixes == [".mid", ".png", ".reference.mid", ".wav"]
    reference = mido.MidiFile(workdir / "example" / f"{example['id']}.reference.mid")
    assert sum(m.type == "note_on" and m.velocity > 0 for t in reference.tracks for m in t) > 0
    assert "[demo] done in" in out
    logged = (workdir / "metrics.jsonl").read_text()

    # Again: training is finished, so it only evaluates and transcribes.
    status, out, err = run_cli(*command)
    assert status == 0, err
    assert (workdir / "metrics.jsonl").read_text() == logged  # no new steps


def test_one_host_device_per_core(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
    monkeypatch.setattr(demo.os, "sched_getaffinity", lambda _: set(range(6)))
    assert demo.use_cpu_cores(16) == 4  # the most devices that divide the batch
    assert demo.os.environ["XLA_FLAGS"].endswith("--xla_force_host_platform_device_count=4")
    assert demo.use_cpu_cores(16) == 0  # a count already there wins


def test_demo_does_not_invent_real_datasets(tmp_path, run_cli):
    status, _, err = run_cli(
        "demo", "--workdir", tmp_path / "run", "--data", tmp_path / "data",
        "--gin_param", "DataConfig.mixture = 'maestro'",
    )  # fmt: skip
    assert status == 2
    assert "mt3 prepare maestro" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()

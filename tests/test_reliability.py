"""Never lose a user's file, recover from damaged state, reject bad input before work."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time

import mido
import numpy as np
import pytest
import soundfile

from mt3.config import DataConfig, RunConfig, TrainConfig, get_variant
from mt3.data.prepare import prepare
from mt3.notes import Notes, write_midi
from mt3.train.train import train


@pytest.fixture
def take(tmp_path):
    """take.wav with take.mid beside it: the layout `mt3 prepare folder` reads."""
    folder = tmp_path / "takes"
    folder.mkdir()
    t = np.arange(22050 * 2) / 22050
    soundfile.write(folder / "take.wav", 0.3 * np.sin(2 * np.pi * 330 * t), 22050)
    write_midi(Notes.from_records([{"start": 0.1, "end": 0.5, "pitch": 64}]), folder / "take.mid")
    return folder


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize(
    "args, message",
    [
        # the reference would become the transcription's MIDI
        (["{d}/take.wav", "--reference", "{d}/take.mid", "-o", "{d}"], "over its own input"),
        # the rendering would replace the input audio
        (["{d}/take.wav", "--format", "wav", "-o", "{d}"], "over its own input"),
        (["{d}/take.wav", "--dump-tokens", "{d}/take.wav"], "over its own input"),
    ],
)
def test_transcribe_never_writes_over_its_inputs(args, message, take, tiny_checkpoint, run_cli):
    before = snapshot(take)
    args = [a.format(d=take) for a in args]
    status, _, err = run_cli("transcribe", *args, "--checkpoint", tiny_checkpoint, "--overwrite")
    assert status == 2 and message in err and err.count("\n") == 1
    assert snapshot(take) == before


def test_existing_outputs_need_overwrite_or_skip(take, tiny_checkpoint, run_cli, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "take.mid").write_bytes(b"keep me")
    args = ("transcribe", take / "take.wav", "-o", out, "--checkpoint", tiny_checkpoint,
            "--max-tokens", "8")  # fmt: skip
    status, _, err = run_cli(*args)
    assert status == 2 and "take.mid: already exists" in err and "--overwrite" in err
    assert (out / "take.mid").read_bytes() == b"keep me"
    status, stdout, _ = run_cli(*args, "--skip-existing")
    assert status == 0 and "skipped" in stdout and (out / "take.mid").read_bytes() == b"keep me"
    status, _, _ = run_cli(*args, "--overwrite")
    assert status == 0 and (out / "take.mid").read_bytes()[:4] == b"MThd"
    for command in (("features", take / "take.wav", "--out", out / "take.mid"),
                    ("tokens", take / "take.mid", "-o", out / "take.mid")):  # fmt: skip
        status, _, err = run_cli(*command)
        assert status == 2 and "already exists" in err
        status, _, err = run_cli(*command[:2], command[2], command[1])  # the input itself
        assert status == 2 and "over its own input" in err


def test_outputs_follow_the_umask(take, tiny_checkpoint, run_cli, tmp_path):
    previous = os.umask(0o022)
    try:
        out = tmp_path / "out"
        command = ("transcribe", take / "take.wav", "-o", out, "--checkpoint", tiny_checkpoint,
                   "--format", "midi,json", "--max-tokens", "4")  # fmt: skip
        assert run_cli(*command)[0] == 0
        assert run_cli("tokens", take / "take.mid", "-o", out / "t.json")[0] == 0
        from mt3.model.store import load_model, save_model

        save_model(load_model(tiny_checkpoint), tmp_path / "model")
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
        assert modes == {"take.mid": 0o644, "take.json": 0o644, "t.json": 0o644}
        assert stat.S_IMODE((tmp_path / "model").stat().st_mode) == 0o755
        assert stat.S_IMODE((tmp_path / "model" / "config.json").stat().st_mode) == 0o644
    finally:
        os.umask(previous)


def far_midi(path):
    """44 bytes: one note ending at 1.5e8 s (a 16.7 s beat, one tick per beat)."""
    midi = mido.MidiFile(ticks_per_beat=1)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=16777215, time=0))
    track.append(mido.Message("note_on", note=60, velocity=80, time=0))
    track.append(mido.Message("note_off", note=60, velocity=0, time=9_000_000))
    midi.save(path)
    return path


@pytest.mark.parametrize(
    "args, message",
    [
        (["tokens", "{far}"], "beyond 24 hours"),
        (["score", "{far}", "{ok}"], "beyond 24 hours"),
        (["score", "{ok}", "{far}"], "beyond 24 hours"),
        (["tokens", "{ok}", "--duration", "inf"], "at most 86400 (24 h)"),
        (["tokens", "{ok}", "--duration", "1e12"], "at most 86400 (24 h)"),
        (["tokens", "{ok}", "--duration", "nan"], "at most 86400 (24 h)"),
    ],
)
def test_absurd_times_are_refused_before_work(args, message, run_cli, tmp_path):
    far = far_midi(tmp_path / "far.mid")
    ok = tmp_path / "ok.mid"
    write_midi(Notes.from_records([{"start": 0.0, "end": 1.0, "pitch": 60}]), ok)
    status, _, err = run_cli(*[a.format(far=far, ok=ok) for a in args])
    assert status == 2 and message in err and err.count("\n") == 1


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    prepare("synth-piano", None, root / "synth-piano", workers=1, progress=False, count=10,
            seconds=4.0)  # fmt: skip
    return root


def run_config(data_root, steps=4, **model):
    return RunConfig(
        get_variant("tiny", **model),
        DataConfig(data_root=str(data_root), mixture="synth-piano"),
        TrainConfig(steps=steps, batch_size=2, log_every_steps=1, checkpoint_every_steps=2),
    )


@pytest.mark.parametrize("damage", ["truncated", "overwritten"])
def test_a_damaged_latest_checkpoint_falls_back_to_an_intact_one(
    damage, data_root, tmp_path, capfd
):
    """A truncated array file (orbax notices) or 64 overwritten bytes in one (orbax would load
    them as wrong values; the step's checksums.json notices)."""
    from mt3.model.store import load_model

    workdir = tmp_path / "run"
    train(run_config(data_root), workdir)
    arrays = sorted((workdir / "checkpoints" / "4" / "state").rglob("*"), key=lambda p: p.name)
    damaged = max((p for p in arrays if p.is_file()), key=lambda p: p.stat().st_size)
    data = bytearray(damaged.read_bytes())
    if damage == "truncated":
        data = data[:100]
    else:
        data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    damaged.write_bytes(bytes(data))
    model = load_model(workdir)
    assert "checkpoints/4: damaged checkpoint" in capfd.readouterr().err
    reference = load_model(workdir, step=2)
    np.testing.assert_array_equal(
        model.decoder.logits_dense.kernel.get_value(),
        reference.decoder.logits_dense.kernel.get_value(),
    )
    # Training resumes from step 2, sets the damaged step aside (kept) and finishes.
    last = train(run_config(data_root, steps=6), workdir)
    assert last["step"] == 6 and (workdir / "checkpoints" / "damaged-4").is_dir()
    assert "resumed from" in capfd.readouterr().out
    steps = [json.loads(line)["step"] for line in open(workdir / "metrics.jsonl")]
    assert steps == [1, 2, 3, 4, 5, 6]  # one row per step, replayed steps not doubled


def test_a_full_disk_stops_training_at_the_save_keeping_the_last_checkpoint(
    data_root, small_disk, tmp_path
):
    """Step 2's checkpoint (about 5 MB) fits in 8 MB, step 4's does not: the run stops at step 4
    in one line (the free space is checked before saving), keeps step 2, and resumes from it once
    there is space. A save that fails while being written (the free-space check fooled) stops
    the run at the next logged step, in one line, with none of orbax's tracebacks and no
    partial folder."""
    from mt3.model.store import CheckpointError

    disk = small_disk("8m")
    with pytest.raises(CheckpointError, match="step 4 .* step 2, is kept") as error:
        train(run_config(data_root, steps=6), disk / "run")
    assert "\n" not in str(error.value)
    assert sorted(p.name for p in (disk / "run" / "checkpoints").iterdir()) == ["2"]
    subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
    assert train(run_config(data_root, steps=6), disk / "run")["step"] == 6

    full = small_disk("1m")
    fooled = (
        "import shutil, sys; real = shutil.disk_usage; "
        "shutil.disk_usage = lambda p: real(p)._replace(free=1 << 40); "
        "from mt3.cli.main import main; sys.exit(main(sys.argv[1:]))"
    )
    command = [sys.executable, "-c", fooled, "train", "--workdir", str(full / "run"),
               "--variant", "tiny", "--gin_param", f"DataConfig.data_root = '{data_root}'",
               "--gin_param", "DataConfig.mixture = 'synth-piano'",
               "--gin_param", "TrainConfig.steps = 50", "--gin_param", "TrainConfig.batch_size = 2",
               "--gin_param", "TrainConfig.log_every_steps = 5",
               "--gin_param", "TrainConfig.checkpoint_every_steps = 5"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    err = "".join(line + "\n" for line in done.stderr.splitlines() if "Warn" not in line)
    assert done.returncode == 2 and err.count("\n") == 1, err
    assert "saving the checkpoint of step 5 failed (no space left on device)" in err, err
    assert "step 10/50" in done.stdout and "step 15/50" not in done.stdout  # stopped early
    assert list((full / "run" / "checkpoints").iterdir()) == []


def test_an_incompatible_resume_is_refused_before_anything_is_written(data_root, tmp_path):
    from mt3.train.train import TrainingError

    workdir = tmp_path / "run"
    train(run_config(data_root, steps=2), workdir)
    saved = (workdir / "config.json").read_text()
    with pytest.raises(TrainingError, match=r"emb_dim 128 \(now 64\)"):
        train(run_config(data_root, steps=4, emb_dim=64, num_heads=2), workdir)
    assert (workdir / "config.json").read_text() == saved
    train(run_config(data_root, steps=4), workdir)  # the same settings with more steps: fine


def test_sigterm_saves_and_exits_143(data_root, tmp_path):
    workdir = tmp_path / "run"
    command = [sys.executable, "-m", "mt3", "train", "--workdir", str(workdir), "--variant", "tiny",
               "--gin_param", f"DataConfig.data_root = '{data_root}'",
               "--gin_param", "DataConfig.mixture = 'synth-piano'",
               "--gin_param", "TrainConfig.steps = 100000",
               "--gin_param", "TrainConfig.batch_size = 2",
               "--gin_param", "TrainConfig.log_every_steps = 1"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while time.time() < deadline and not (
        (workdir / "metrics.jsonl").is_file()
        and (workdir / "metrics.jsonl").read_text().count("\n") >= 2
    ):
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 143, err[-2000:]
    assert "stopped by SIGTERM" in out and "done at step" not in out
    assert any(p.name.isdigit() for p in (workdir / "checkpoints").iterdir())


def test_evaluate_rejects_bad_values_before_work(run_cli, tiny_checkpoint, data_root, tmp_path):
    for args, message in (
        (["--limit", "0"], "limit must be at least 1"),
        (["--format", "mp4", "--out", str(tmp_path / "e")], "--format takes"),
    ):
        status, _, err = run_cli("evaluate", "--checkpoint", tiny_checkpoint, "--data",
                                 data_root / "synth-piano", *args)  # fmt: skip
        assert status == 2 and message in err and err.count("\n") == 1


def test_truncated_audio_is_refused(tmp_path, run_cli):
    samples = np.random.default_rng(0).uniform(-0.3, 0.3, 16000 * 4).astype(np.float32)
    for suffix in ("wav", "flac"):
        whole = tmp_path / f"whole.{suffix}"
        soundfile.write(whole, samples, 16000)
        cut = tmp_path / f"cut.{suffix}"
        cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
        status, _, err = run_cli("features", cut, "--out", tmp_path / "f.npz")
        assert status == 2 and err.count("\n") == 1, err
        assert "truncated" in err or "corrupt" in err
        assert not (tmp_path / "f.npz").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["prepare", "folder", "--raw", "{t}", "--out", "{t}/o", "--workers", "0"],
         "--workers must be at least 1"),
        (["prepare", "folder", "--raw", "{t}", "--out", "{t}/o", "--split", "auto",
          "--validation-fraction", "2"], "--validation-fraction must be in [0, 1)"),
        (["train", "--workdir", "{t}/w", "--gin_param", "TrainConfig.steps = 10.5"],
         "steps must be int, got 10.5"),
        (["train", "--workdir", "{t}/w", "--gin_param", "TrainConfig.steps = 'many'"],
         "steps must be int, got 'many'"),
        (["features", "{t}/a.wav", "--out", "{t}/file/x.npz"], "is a file, not a folder"),
        (["tokens", "{t}/a.mid", "-o", "{t}/file/x.json"], "is a file, not a folder"),
    ],
)  # fmt: skip
def test_bad_values_are_one_line_before_work(args, message, run_cli, tmp_path, write_pair):
    write_pair(tmp_path, "a")
    soundfile.write(tmp_path / "a.wav", np.zeros(1600, np.float32), 16000)
    (tmp_path / "file").write_text("a regular file")
    status, _, err = run_cli(*[a.format(t=tmp_path) for a in args])
    assert status == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists() and not (tmp_path / "w").exists()


def test_score_reads_a_transcription_folder_with_midi_and_json(run_cli, tmp_path):
    notes = Notes.from_records([{"start": 0.0, "end": 1.0, "pitch": 60}])
    for folder in ("ref", "out"):
        (tmp_path / folder).mkdir()
        write_midi(notes, tmp_path / folder / "a.mid")
    (tmp_path / "out" / "a.json").write_text("{}")  # `--format midi,json`: the MIDI is scored
    status, out, err = run_cli("score", tmp_path / "ref", tmp_path / "out")
    assert status == 0 and "1.0000" in out, err


@pytest.fixture
def small_disk(tmp_path):
    """small_disk(size, read_only=False) mounts a tmpfs of that size (e.g. "128k"): writes past
    it fail with ENOSPC (skips where mounting is not allowed); unmounted after the test."""
    mounts = []

    def mount(size: str, read_only: bool = False):
        folder = tmp_path / f"small{len(mounts)}"
        folder.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                                capture_output=True, text=True)  # fmt: skip
        if result.returncode:
            pytest.skip(f"cannot mount a small tmpfs to fill: {result.stderr.strip()}")
        mounts.append(folder)
        return folder

    yield mount
    for folder in mounts:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.fixture
def full_disk(small_disk):
    return small_disk("128k")


def test_a_full_disk_is_one_line_and_leaves_nothing(full_disk, take, tiny_checkpoint, run_cli):
    long_audio = full_disk.parent / "long.wav"
    soundfile.write(long_audio, np.zeros(16000 * 30, np.float32), 16000)
    for command in (
        ("features", long_audio, "--out", full_disk / "f.npz"),
        ("transcribe", take / "take.wav", "-o", full_disk, "--format", "wav", "--checkpoint",
         tiny_checkpoint, "--max-tokens", "4"),
        ("prepare", "synth-piano", "--out", full_disk / "data", "--count", "10", "--seconds", "6",
         "--workers", "1"),
    ):  # fmt: skip
        status, _, err = run_cli(*command)
        last = err.strip().splitlines()[-1]  # (prepare's progress bar comes first)
        assert status == 2 and "no space left on device" in last.lower(), err
        left = [p.name for p in full_disk.rglob("*") if p.is_file()]
        assert left in ([], [".building.json"])  # prepare keeps its resume record, no partial file


def test_a_model_folder_on_a_full_disk_is_one_error_and_leaves_nothing(
    full_disk, tiny_checkpoint, monkeypatch, capfd
):
    """`mt3 convert-checkpoint` and `mt3 download` write model folders through save_model: the
    free space is checked first; a write that fails anyway (the check fooled here) is one
    CheckpointError, and the staging folder is removed although orbax's writes in flight
    recreate their folders for a moment."""
    import gc
    import shutil

    from mt3.model.store import CheckpointError, load_model, save_model

    model = load_model(tiny_checkpoint)
    with pytest.raises(CheckpointError, match="not enough space"):
        save_model(model, full_disk / "model")
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1 << 40))
    with pytest.raises(CheckpointError, match=r"model: writing failed \(no space left on device"):
        save_model(model, full_disk / "model")
    gc.collect()
    assert list(full_disk.iterdir()) == []
    err = capfd.readouterr().err
    assert "Traceback" not in err and "ERROR" not in err, err


def test_a_read_only_output_folder_is_refused_before_work(
    small_disk, take, tiny_checkpoint, run_cli
):
    """A read-only file system (access(2) says so even to root) is found when the outputs are
    checked, not at the first write after the work."""
    from mt3.atomic import WriteError
    from mt3.model.store import load_model, save_model

    locked = small_disk("1m", read_only=True)
    for command in (
        ("transcribe", take / "take.wav", "-o", locked / "out", "--checkpoint", tiny_checkpoint),
        ("features", take / "take.wav", "--out", locked / "f.npz"),
        ("convert-checkpoint", take, locked / "model"),
    ):
        status, _, err = run_cli(*command)
        assert status == 2 and f"{locked} is not writable" in err and err.count("\n") == 1, err
    with pytest.raises(WriteError, match="not writable"):
        save_model(load_model(tiny_checkpoint), locked / "model")


def test_re_preparing_with_other_options_or_inputs_is_detected(run_cli, tmp_path, write_pair):
    from mt3.data.pipeline import SplitSource

    out = tmp_path / "synth"
    command = ("prepare", "synth-piano", "--out", out, "--seconds", "2", "--workers", "1")
    assert run_cli(*command, "--count", "10")[0] == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["fingerprint"]) == 64
    assert run_cli(*command, "--count", "10")[0] == 0  # the same build: resumes, no error
    status, _, err = run_cli(*command, "--count", "20")
    assert status == 2 and "prepared from options" in err and "--overwrite" in err
    assert json.loads((out / "manifest.json").read_text()) == manifest  # untouched
    assert run_cli(*command, "--count", "20", "--overwrite")[0] == 0
    assert len(SplitSource(out, "train")) == 16  # no orphan shard of the 10-piece build
    assert not (out / ".building.json").exists()
    # A changed raw file is noticed too.
    raw = tmp_path / "takes"
    write_pair(raw, "a")
    assert run_cli("prepare", "folder", "--raw", raw, "--out", tmp_path / "mine")[0] == 0
    write_pair(raw, "a", seconds=2.0)
    status, _, err = run_cli("prepare", "folder", "--raw", raw, "--out", tmp_path / "mine")
    assert status == 2 and "other input files" in err


@pytest.mark.parametrize("damage", ["truncated", "overwritten", "truncated, no checksums.json"])
def test_a_damaged_model_folder_is_one_line(damage, tiny_checkpoint, take, tmp_path):
    """A parameter file cut short or with bytes overwritten in its middle: one line naming the
    file (checksums.json). A folder from before checksums.json: orbax finds the truncation; one
    line naming the folder, and none of the tracebacks of the reads orbax abandons (Python
    prints those when it collects them, up to the process's exit: hence a real process)."""
    import shutil
    import subprocess
    import sys

    broken = tmp_path / "broken"
    shutil.copytree(tiny_checkpoint, broken)
    largest = max((p for p in (broken / "params").rglob("*") if p.is_file()),
                  key=lambda p: p.stat().st_size)  # fmt: skip
    data = bytearray(largest.read_bytes())
    if damage.startswith("truncated"):
        data = data[:64]
    else:
        data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    largest.write_bytes(bytes(data))
    if "no checksums" in damage:
        (broken / "checksums.json").unlink()
    command = [sys.executable, "-m", "mt3", "transcribe", take / "take.wav", "--checkpoint", broken,
               "-o", tmp_path / "out"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    err = "".join(line + "\n" for line in done.stderr.splitlines() if "Warn" not in line)
    assert done.returncode == 2 and err.count("\n") == 1, err
    named = f"{broken / 'params'}: parameters damaged" if "no checksums" in damage else largest
    assert f"{named}" in err, err
    assert not (tmp_path / "out").exists()

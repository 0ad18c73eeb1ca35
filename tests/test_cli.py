"""The console script: help text, output formats, one-line errors and no partial outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from mt3.notes import Notes, write_midi


def test_console_script_help():
    result = subprocess.run(
        [sys.executable, "-m", "mt3", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("tokens", "features", "score"):
        assert command in result.stdout


def test_the_command_runs_with_tcmalloc_where_installed(monkeypatch, tmp_path):
    """`mt3` re-runs itself once with tcmalloc preloaded (mt3.allocator); not when it is already
    preloaded, nor with MT3_ALLOCATOR=system. The re-run process really has it loaded."""
    from mt3 import allocator

    library = allocator.find_tcmalloc()
    if library is None or sys.platform != "linux":
        pytest.skip("tcmalloc is not installed here (scripts/setup.sh installs it on Debian)")
    calls = []
    monkeypatch.setattr(allocator.os, "execve", lambda *args: calls.append(args))
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    monkeypatch.delenv(allocator.ALLOCATOR_ENV, raising=False)
    monkeypatch.setattr(sys, "argv", ["mt3", "transcribe", "a.wav"])
    allocator.use_tcmalloc()
    ((program, argv, environment),) = calls
    assert argv == [sys.executable, "-m", "mt3", "transcribe", "a.wav"]
    assert environment["LD_PRELOAD"].startswith(library)
    monkeypatch.setenv("LD_PRELOAD", environment["LD_PRELOAD"])
    allocator.use_tcmalloc()  # already preloaded: no second re-run
    monkeypatch.delenv("LD_PRELOAD")
    monkeypatch.setenv(allocator.ALLOCATOR_ENV, "system")
    allocator.use_tcmalloc()
    assert len(calls) == 1
    # For real: every Python process started records whether it has tcmalloc mapped.
    (tmp_path / "sitecustomize.py").write_text(
        "import os\n"
        "with open(os.environ['MAPS_LOG'], 'a') as log:\n"
        "    print('tcmalloc' in open('/proc/self/maps').read(), file=log)\n"
    )
    log = tmp_path / "maps.log"
    environment = {**os.environ, "PYTHONPATH": str(tmp_path), "MAPS_LOG": str(log)}
    for name in ("LD_PRELOAD", allocator.ALLOCATOR_ENV):
        environment.pop(name, None)
    subprocess.run([sys.executable, "-m", "mt3", "--help"], env=environment, check=True,
                   capture_output=True)  # fmt: skip
    assert log.read_text().split() == ["False", "True"]  # the command, then its re-run


@pytest.mark.parametrize("command", ["tokens", "features", "score"])
def test_subcommand_help_has_examples(command, run_cli):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(command, "--help")
    assert exit_info.value.code == 0


@pytest.fixture
def song(tmp_path):
    notes = Notes.from_records(
        [
            {"start": 0.0, "end": 2.5, "pitch": 60, "velocity": 90, "program": 0},
            {"start": 1.0, "end": 1.5, "pitch": 40, "velocity": 80, "program": 33},
            {"start": 0.5, "end": 0.6, "pitch": 36, "velocity": 100, "is_drum": True},
        ]
    )
    path = tmp_path / "song.mid"
    write_midi(notes, path)
    return path


def test_tokens_outputs(song, run_cli, tmp_path):
    status, out, _ = run_cli("tokens", song, "--json")
    payload = json.loads(out)
    assert status == 0 and payload["vocab"] == "mt3" and payload["duration"] == 2.5
    assert [s["start_time"] for s in payload["segments"]] == [0.0, 2.048]
    assert all(s["tokens"][-1] == 1 for s in payload["segments"])
    status, out, _ = run_cli("tokens", song)
    assert "tie=0" in out and "program=33" in out
    target = tmp_path / "t.json"
    assert run_cli("tokens", song, "--vocab", "ismir2021", "-o", target)[0] == 0
    assert json.loads(target.read_text())["vocab"] == "ismir2021"


def test_score_table_and_folders(song, run_cli, tmp_path):
    status, out, _ = run_cli("score", song, song)
    assert status == 0 and "Onset F1" in out and "1.0000" in out
    for folder in ("ref", "est"):
        (tmp_path / folder).mkdir()
        for name in ("a", "b"):
            (tmp_path / folder / f"{name}.mid").write_bytes(song.read_bytes())
    status, out, _ = run_cli("score", tmp_path / "ref", tmp_path / "est", "--json")
    payload = json.loads(out)
    assert status == 0 and sorted(payload["recordings"]) == ["a", "b"]
    assert payload["metrics"]["Onset + offset + program F1 (full)"] == 1.0


@pytest.mark.parametrize(
    "args, message",
    [
        (["tokens", "{tmp}/missing.mid"], "missing.mid: no such MIDI file"),
        (["tokens", "{tmp}/junk.mid"], "junk.mid: not a readable MIDI file"),
        (["tokens", "{song}", "--duration", "-1"], "--duration must be a non-negative"),
        (["features", "{tmp}/junk.wav", "--out", "{tmp}/f.npz"], "junk.wav: cannot decode audio"),
        (["features", "{tmp}/missing.wav", "--out", "{tmp}/f.npz"], "no such audio file"),
        (["score", "{song}", "{tmp}/missing.mid"], "missing.mid: no such file"),
        (["score", "{song}", "{tmp}/junk.mid"], "junk.mid: not a readable MIDI file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, run_cli, tmp_path, song):
    (tmp_path / "junk.mid").write_bytes(b"garbage")
    (tmp_path / "junk.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    args = [a.format(tmp=tmp_path, song=song) for a in args]
    status, out, err = run_cli(*args)
    assert status == 2
    assert err.count("\n") == 1 and message in err and err.startswith(f"mt3 {args[0]}: error: ")
    assert not (tmp_path / "f.npz").exists()


def test_features_writes_npz(run_cli, tmp_path):
    path = tmp_path / "clip.wav"
    soundfile.write(path, np.zeros(16000 * 3, np.float32), 16000)
    out = tmp_path / "clip.npz"
    status, stdout, _ = run_cli("features", path, "--config", "ismir2021", "--out", out)
    assert status == 0 and "inputs [1, 512, 512]" in stdout
    data = np.load(out)
    assert data["inputs"].dtype == np.float32 and data["start_times"].dtype == np.float64
    assert list(tmp_path.glob(".*")) == []


def test_prepare_options_belong_to_their_dataset(run_cli, tmp_path):
    status, _, err = run_cli("prepare", "folder", "--raw", tmp_path, "--out", tmp_path / "o",
                             "--count", "3")  # fmt: skip
    assert status == 2 and "--count is not an option of folder" in err
    assert not (tmp_path / "o").exists()


def test_prepare_help_lists_every_declared_dataset(run_cli, capsys):
    from mt3.data.datasets import registry

    with pytest.raises(SystemExit):
        run_cli("prepare", "--help")
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in registry())
    assert "synth-chorales" in registry() and "--em-dir" in out

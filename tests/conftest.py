"""Shared fixtures: where the reference outputs of the original MT3 code and the release samples
live (docs/goldens.md), small audio + MIDI pairs, a Slakh tree, and the console script in-process.

Test modules get everything shared from here, as fixtures; they never import each other."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MT3_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session", autouse=True)
def user_cache(tmp_path_factory):
    """The tests' own user cache (MT3_HOME), so that they never write into ~/.cache/mt3."""
    folder = tmp_path_factory.mktemp("mt3-home")
    previous = os.environ.get("MT3_HOME")
    os.environ["MT3_HOME"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("MT3_HOME", None)
    else:
        os.environ["MT3_HOME"] = previous


def shared_folders(kind: str):
    """``folder(name)`` for ../shared/<kind>/<name>; skips (saying why) when it is absent."""

    def folder(name: str) -> Path:
        path = SHARED / kind / name
        if not path.is_dir():
            pytest.skip(f"{kind} files not found at {path} (set MT3_SHARED to the shared folder)")
        return path

    return folder


@pytest.fixture(scope="session")
def golden_dir():
    """``golden_dir(name)``: outputs of the original MT3 code (docs/goldens.md)."""
    return shared_folders("golden")


@pytest.fixture(scope="session")
def samples():
    """``samples(name)``: real release files of a dataset in ../shared/dataset_samples."""
    return shared_folders("dataset_samples")


@pytest.fixture(scope="session")
def write_pair():
    """``write_pair(folder, name, seconds, program)``: a 22.05 kHz FLAC sine and a same-named
    MIDI file with one note (0.1-0.6 s, pitch 57) of ``program``: a `folder` dataset take."""
    import soundfile

    from mt3.notes import Notes, write_midi

    def write(folder: Path, name: str, seconds: float = 1.0, program: int = 0) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        t = np.arange(int(seconds * 22050)) / 22050
        soundfile.write(folder / f"{name}.flac", 0.2 * np.sin(2 * np.pi * 220 * t), 22050)
        notes = Notes.from_records([{"start": 0.1, "end": 0.6, "pitch": 57, "program": program}])
        write_midi(notes, folder / f"{name}.mid")

    return write


@pytest.fixture(scope="session")
def released_checkpoint():
    """``released_checkpoint(name)``: Magenta's released T5X checkpoint in ../shared/checkpoints
    (the files of gs://mt3/checkpoints/<name>)."""
    return shared_folders("checkpoints")


@pytest.fixture
def slakh_tree(tmp_path, samples):
    """``slakh_tree(release)``: Track00001 of a Slakh release sample copied into
    tmp_path/slakh in that release's layout; returns the raw root."""

    def tree(release: str = "slakh2100_flac_redux/train") -> Path:
        sample = samples("slakh") / release / "Track00001"
        root = tmp_path / "slakh" / ("train" if release.startswith("slakh2100") else "")
        shutil.copytree(sample, root / "Track00001")
        return tmp_path / "slakh"

    return tree


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A model folder of the tiny variant with random weights (seed 0)."""
    from flax import nnx

    from mt3.config import get_variant
    from mt3.model.store import save_model
    from mt3.model.t5 import Transformer

    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    save_model(Transformer(get_variant("tiny"), rngs=nnx.Rngs(0)), path)
    return path


@pytest.fixture
def run_cli(capsys):
    """Run the mt3 console script in-process; returns (exit status, stdout, stderr)."""
    from mt3.cli.main import main

    def run(*args: str):
        status = main([str(a) for a in args])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run


@pytest.fixture(scope="session")
def released_model(tmp_path_factory):
    """Magenta's released `mt3` checkpoint (../shared/checkpoints/mt3) converted into a model
    folder once per session; skips (saying why) when the checkpoint is absent."""
    checkpoint = SHARED / "checkpoints" / "mt3"
    if not (checkpoint / "checkpoint").is_file():
        pytest.skip(f"the released mt3 checkpoint is not at {checkpoint} (set MT3_SHARED)")
    from mt3.model.convert import convert_checkpoint

    out = tmp_path_factory.mktemp("released") / "mt3"
    convert_checkpoint(checkpoint, out, "mt3")
    return out

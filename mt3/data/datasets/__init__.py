"""Raw-dataset readers: each module finds a release's recordings and turns one into a Record.

A module provides ``find_recordings(raw_dir, **options) -> list[RawItem]``, which checks the whole
layout first and raises DatasetLayoutError listing what is missing, and
``load_record(item) -> Record``.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from pathlib import Path

import numpy as np

from mt3.audio import load_audio
from mt3.data.records import audio_to_int16

DATASETS = ("maestro", "slakh", "cerberus4", "guitarset", "musicnet", "urmp", "folder",
            "synth-piano", "synth-ensemble", "synth-band", "synth-chorales")  # fmt: skip


class DatasetLayoutError(ValueError):
    """A raw dataset folder that does not have the release's layout."""


@dataclasses.dataclass(frozen=True)
class RawItem:
    """One recording of a raw release: where its files are and which split it belongs to."""

    id: str
    split: str
    paths: dict
    metadata: dict = dataclasses.field(default_factory=dict)


def get_dataset(name: str):
    if name not in DATASETS:
        raise DatasetLayoutError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return importlib.import_module(f"mt3.data.datasets.{name.split('-')[0]}")


def require_folder(raw: Path, name: str) -> Path:
    raw = Path(raw)
    if not raw.is_dir():
        raise DatasetLayoutError(f"{raw}: no such folder (the unpacked {name} release)")
    return raw


def report_missing(raw: Path, name: str, missing, skip_incomplete: bool = False) -> set[str]:
    """``missing``: (recording id, file) pairs. Raise one error naming the files (the first ten,
    and how many in all), or with ``skip_incomplete`` warn and return the ids to leave out."""
    if not missing:
        return set()
    shown = "; ".join(f for _, f in missing[:10])
    shown += f"; and {len(missing) - 10} more" if len(missing) > 10 else ""
    ids = {recording for recording, _ in missing}
    if not skip_incomplete:
        raise DatasetLayoutError(
            f"{raw}: {len(missing)} file(s) of the {name} layout missing: {shown} "
            "(pass --skip-incomplete to prepare the complete recordings only)"
        )
    print(f"warning: {raw}: skipping {len(ids)} incomplete recording(s); missing: {shown}",
          file=sys.stderr)  # fmt: skip
    return ids


def load_int16(path: Path) -> np.ndarray:
    """16 kHz mono int16 audio of a file (resampled and mixed down as for transcription)."""
    return audio_to_int16(load_audio(path))

"""Your own data: a folder (searched recursively) of audio files, each with a MIDI file of the
same name beside it (`take1.wav` + `take1.mid`). Sustain pedal applied; programs and drums from
the MIDI. ``split`` puts everything in one split, or "auto" sends a deterministic
``validation_fraction`` of the recordings (by a hash of the path) to validation."""

from __future__ import annotations

import hashlib

from mt3.audio import AUDIO_SUFFIXES, find_audio
from mt3.data.datasets import (
    SKIP_INCOMPLETE,
    Dataset,
    DatasetLayoutError,
    Option,
    RawItem,
    load_int16,
    report_missing,
    require_folder,
)
from mt3.data.records import Record
from mt3.notes import read_midi

SPLITS = ("train", "validation", "test", "auto")


def find_recordings(raw, split="train", validation_fraction=0.1, skip_incomplete=False, **_):
    raw = require_folder(raw, "audio + MIDI")
    if split not in SPLITS:
        raise DatasetLayoutError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if not 0 <= validation_fraction < 1:
        raise DatasetLayoutError(
            f"--validation-fraction must be in [0, 1), got {validation_fraction}"
        )
    audio = find_audio(raw)
    if not audio:
        raise DatasetLayoutError(f"{raw}: no audio files ({', '.join(AUDIO_SUFFIXES)})")
    items, missing, seen = [], [], {}
    for path in audio:
        midi = next(
            (m for m in (path.with_suffix(".mid"), path.with_suffix(".midi")) if m.is_file()), None
        )
        relative = path.relative_to(raw)
        if midi is None:
            missing.append((str(relative), f"{relative.with_suffix('.mid')} (for {relative})"))
            continue
        key = str(relative.with_suffix(""))
        if key in seen:
            raise DatasetLayoutError(f"{raw}: {seen[key]} and {relative} would share one MIDI file")
        seen[key] = relative
        chosen = split
        if split == "auto":
            digest = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
            chosen = "validation" if digest < validation_fraction else "train"
        items.append(RawItem(key.replace("/", "__"), chosen, {"audio": path, "midi": midi}))
    report_missing(raw, "audio + MIDI folder", missing, skip_incomplete)
    return items


def load_record(item: RawItem) -> Record:
    notes = read_midi(item.paths["midi"]).notes
    metadata = {"dataset": "folder", "split": item.split, "source": str(item.paths["audio"])}
    return Record(item.id, load_int16(item.paths["audio"]), notes, metadata)


DATASETS = (
    Dataset("folder", "your audio files with same-named .mid files", find_recordings, load_record,
            options=(Option("split", "folder: train, validation, test, or auto", "train",
                            choices=SPLITS),
                     Option("validation_fraction", "folder with --split auto", 0.1, float),
                     SKIP_INCOMPLETE)),
)  # fmt: skip

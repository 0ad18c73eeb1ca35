"""GuitarSet (docs/mt3.md §4.7): `annotation/<id>.jams` with one `note_midi` annotation per string,
and the mono microphone recording `audio_mono-mic/<id>_mic.wav` (or the pickup mix with
``audio="mix"``). Every note is program 24 (MT3's "Clean Guitar"); fractional MIDI pitches are
rounded; velocity is 100 (MT3 does not use it). Split as the paper: progressions 1 and 2 of every
style train, progression 3 validation (no test split)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from mt3.data.datasets import (
    SKIP_INCOMPLETE,
    Dataset,
    DatasetLayoutError,
    Option,
    RawItem,
    dataset_table,
    load_int16,
    report_missing,
    require_folder,
)
from mt3.data.records import Record
from mt3.notes import Notes

TABLE = dataset_table("guitarset")
GUITAR_PROGRAM = TABLE["program"]
VELOCITY = TABLE["velocity"]
AUDIO_FOLDERS = {
    "mic": ("audio_mono-mic", "_mic.wav"),
    "mix": ("audio_mono-pickup_mix", "_mix.wav"),
}
_ID = re.compile(r"^\d\d_[A-Za-z]+([123])-\d+-[A-G][b#]?_(comp|solo)$")


def split_of(excerpt_id: str) -> str:
    match = _ID.match(excerpt_id)
    if not match:
        raise DatasetLayoutError(
            f"{excerpt_id}: not a GuitarSet excerpt id (e.g. 00_BN1-129-Eb_comp)"
        )
    return "validation" if int(match.group(1)) == TABLE["validation_progression"] else "train"


def find_recordings(raw, audio: str = "mic", skip_incomplete: bool = False, **_):
    raw = require_folder(raw, "GuitarSet")
    if audio not in AUDIO_FOLDERS:
        raise DatasetLayoutError(f"GuitarSet audio must be one of {', '.join(AUDIO_FOLDERS)}")
    annotations = sorted((raw / "annotation").glob("*.jams"))
    if not annotations:
        raise DatasetLayoutError(f"{raw}: no annotation/*.jams (unzip annotation.zip there)")
    folder, suffix = AUDIO_FOLDERS[audio]
    items, missing = [], []
    for jams in annotations:
        wav = raw / folder / f"{jams.stem}{suffix}"
        if not wav.is_file():
            missing.append((jams.stem, str(wav.relative_to(raw))))
        items.append(RawItem(jams.stem, split_of(jams.stem), {"jams": jams, "audio": wav}))
    skipped = report_missing(raw, "GuitarSet", missing, skip_incomplete)
    return [item for item in items if item.id not in skipped]


def _observations(data) -> list[tuple[float, float, float]]:
    """(time, duration, value) of a JAMS annotation in either list or column form."""
    if isinstance(data, dict):
        return list(zip(data["time"], data["duration"], data["value"]))
    return [(o["time"], o["duration"], o["value"]) for o in data]


def read_jams_notes(path: Path) -> Notes:
    try:
        annotations = json.loads(Path(path).read_text())["annotations"]
        rows = [
            row
            for a in annotations
            if a.get("namespace") == "note_midi"
            for row in _observations(a["data"])
        ]
    except (ValueError, KeyError, TypeError) as error:
        raise DatasetLayoutError(f"{path}: not a GuitarSet JAMS file ({error})") from None
    rows = [(t, d, v) for t, d, v in rows if d > 0]
    if not rows:
        raise DatasetLayoutError(f"{path}: no notes (no note_midi annotation with notes)")
    start = np.array([r[0] for r in rows], np.float64)
    return Notes(
        start=start,
        end=start + np.array([r[1] for r in rows], np.float64),
        pitch=np.rint([r[2] for r in rows]).astype(np.int16),
        velocity=np.full(len(rows), VELOCITY),
        program=np.full(len(rows), GUITAR_PROGRAM),
        is_drum=np.zeros(len(rows), bool),
    ).sorted()


def load_record(item: RawItem) -> Record:
    notes = read_jams_notes(item.paths["jams"])
    metadata = {"dataset": "guitarset", "split": item.split}
    return Record(item.id, load_int16(item.paths["audio"]), notes, metadata)


DATASETS = (
    Dataset("guitarset", "GuitarSet: annotation/*.jams with mono microphone (or pickup) audio",
            find_recordings, load_record, splits=("train", "validation"),
            options=(Option("audio", "GuitarSet audio: mic or mix", "mic", choices=("mic", "mix")),
                     SKIP_INCOMPLETE),
            mixtures=(("mt3", 1),), paper_split="validation"),
)  # fmt: skip

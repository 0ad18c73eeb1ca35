"""MAESTRO v1/v2/v3 (docs/mt3.md §4.4): the metadata file (json or csv) lists every performance with
its split and its `.wav` / `.midi` paths relative to the release root; programs from the MIDI
(piano, 0), sustain pedal applied."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from mt3.data.datasets import (
    Dataset,
    DatasetLayoutError,
    RawItem,
    load_int16,
    report_missing,
    require_folder,
)
from mt3.data.records import Record
from mt3.notes import read_midi

FIELDS = ("split", "midi_filename", "audio_filename")


def _rows(path: Path) -> list[dict]:
    if path.suffix == ".csv":
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    data = json.loads(path.read_text())
    if isinstance(data, list):  # v1 / v2: a list of records
        return data
    if isinstance(data, dict) and "midi_filename" in data:  # v3: one column per field
        return [{key: data[key][index] for key in data} for index in data["midi_filename"]]
    raise DatasetLayoutError(f"{path}: not a MAESTRO metadata file (no midi_filename entries)")


def find_recordings(raw, skip_incomplete: bool = False, **_) -> list[RawItem]:
    raw = require_folder(raw, "MAESTRO")
    metadata = sorted(raw.glob("maestro-v*.json")) or sorted(raw.glob("maestro-v*.csv"))
    if not metadata:
        raise DatasetLayoutError(
            f"{raw}: no maestro-v*.json or maestro-v*.csv; point --raw at the unpacked "
            "maestro-vX.Y.Z folder"
        )
    try:
        rows = _rows(metadata[-1])
    except (ValueError, KeyError, TypeError) as error:
        raise DatasetLayoutError(f"{metadata[-1]}: unreadable metadata ({error})") from None
    items, missing = [], []
    for number, row in enumerate(rows):
        if any(not row.get(field) for field in FIELDS):
            raise DatasetLayoutError(f"{metadata[-1]}: row {number} lacks one of {FIELDS}")
        midi, audio = raw / row["midi_filename"], raw / row["audio_filename"]
        record_id = Path(row["midi_filename"]).stem
        missing += [(record_id, str(p.relative_to(raw))) for p in (midi, audio) if not p.is_file()]
        extra = {k: row.get(k) for k in ("canonical_composer", "canonical_title", "year")}
        items.append(RawItem(record_id, row["split"], {"midi": midi, "audio": audio}, extra))
    skipped = report_missing(raw, "MAESTRO", missing, skip_incomplete)
    return [item for item in items if item.id not in skipped]


def load_record(item: RawItem) -> Record:
    notes = read_midi(item.paths["midi"]).notes
    metadata = {"dataset": "maestro", "split": item.split, **item.metadata}
    return Record(item.id, load_int16(item.paths["audio"]), notes, metadata)


DATASETS = (
    Dataset("maestro", "MAESTRO v1/v2/v3 piano (json or csv metadata)", find_recordings,
            load_record, mixtures=(("mt3", 0), ("ismir2021", 0)), paper_split="test"),
)  # fmt: skip

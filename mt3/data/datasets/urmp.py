"""URMP (docs/mt3.md §4.8): one folder per piece, `<NN>_<Title>_<code1>_<code2>...`, holding the mix
`AuMix_<folder>.wav` and per part `Notes_<k>_<code>_<NN>_<Title>.txt` (onset s, pitch Hz,
duration s). Programs from the instrument code (MT3's table; every `sax` -> 64); the part's code
is read from the folder name, which also fixes the mislabelled third part of 15_Surprise. Pieces
1, 2, 12, 13, 24, 25, 31, 38 and 39 are validation (MT3/paper), the rest train."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mt3.data.datasets import (
    Dataset,
    DatasetLayoutError,
    RawItem,
    dataset_table,
    load_int16,
    report_missing,
    require_folder,
)
from mt3.data.records import Record
from mt3.notes import Notes

TABLE = dataset_table("urmp")
PROGRAMS = TABLE["programs"]
VALIDATION_PIECES = frozenset(TABLE["validation_pieces"])
VELOCITY = TABLE["velocity"]
_FOLDER = re.compile(r"^(\d\d)_([^_]+)_((?:[a-z]+_?)+)$")


def find_recordings(raw, skip_incomplete: bool = False, **_) -> list[RawItem]:
    raw = require_folder(raw, "URMP")
    items, missing = [], []
    for folder in sorted(p for p in raw.iterdir() if p.is_dir()):
        match = _FOLDER.match(folder.name)
        if not match:
            continue  # Supplementary_Files and anything else
        number, codes = int(match.group(1)), match.group(3).split("_")
        unknown = [c for c in codes if c not in PROGRAMS]
        if unknown:
            raise DatasetLayoutError(f"{folder}: unknown URMP instrument code(s) {unknown}")
        mix = folder / f"AuMix_{folder.name}.wav"
        parts = []
        for k in range(1, len(codes) + 1):
            found = sorted(folder.glob(f"Notes_{k}_*.txt"))
            if not found:
                missing.append((folder.name, f"{folder.name}/Notes_{k}_{codes[k - 1]}_*.txt"))
            parts.append(found[0] if found else None)
        if not mix.is_file():
            missing.append((folder.name, f"{folder.name}/{mix.name}"))
        split = "validation" if number in VALIDATION_PIECES else "train"
        programs = [PROGRAMS[c] for c in codes]
        items.append(
            RawItem(folder.name, split, {"audio": mix, "parts": parts}, {"programs": programs})
        )
    if not items:
        raise DatasetLayoutError(f"{raw}: no URMP piece folders like 01_Jupiter_vn_vc")
    skipped = report_missing(raw, "URMP", missing, skip_incomplete)
    return [item for item in items if item.id not in skipped]


def hz_to_midi(frequency) -> np.ndarray:
    return np.rint(69 + 12 * np.log2(np.asarray(frequency, np.float64) / 440.0))


def read_part(path: Path, program: int) -> Notes:
    try:
        table = np.loadtxt(path, ndmin=2)
        if table.shape[1] != 3 or np.any(table[:, 1] <= 0) or np.any(table[:, 2] < 0):
            raise ValueError("expected rows of onset (s), pitch (Hz > 0), duration (s)")
    except ValueError as error:
        raise DatasetLayoutError(f"{path}: bad URMP note file ({error})") from None
    table = table[table[:, 2] > 0]
    return Notes(
        start=table[:, 0],
        end=table[:, 0] + table[:, 2],
        pitch=hz_to_midi(table[:, 1]),
        velocity=np.full(len(table), VELOCITY),
        program=np.full(len(table), program),
        is_drum=np.zeros(len(table), bool),
    )


def load_record(item: RawItem) -> Record:
    from mt3.notes import concatenate

    parts = [read_part(p, q) for p, q in zip(item.paths["parts"], item.metadata["programs"])]
    metadata = {"dataset": "urmp", "split": item.split, **item.metadata}
    return Record(item.id, load_int16(item.paths["audio"]), concatenate(parts).sorted(), metadata)


DATASETS = (
    Dataset("urmp", "URMP: piece folders with AuMix and Notes_*.txt", find_recordings,
            load_record, splits=("train", "validation"), mixtures=(("mt3", 2),),
            paper_split="validation"),
)  # fmt: skip

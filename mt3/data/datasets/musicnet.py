"""MusicNet (docs/mt3.md §4.9): `{train,test}_data/<id>.wav` with `{train,test}_labels/<id>.csv`.

Label rows are `start_time,end_time,instrument,note,...` with times in samples at 44.1 kHz and
1-based GM instruments (violin = 41 -> program 40). There is no velocity (100 is used). MT3's own
random split is used, not the official one: 15 validation and 15 test recordings, the other 300
in train (the official test pieces land in train, as in MT3).

With ``labels="em"`` the notes come instead from MusicNetEM's aligned MIDI files
(`<em_dir>/<id>.mid`, Maman & Bermano 2022), which cover 323 of the 330 recordings; recordings
without one are listed as missing.
"""

from __future__ import annotations

import csv
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
from mt3.notes import Notes, read_midi

TABLE = dataset_table("musicnet")
LABEL_SAMPLE_RATE = TABLE["label_sample_rate"]
VELOCITY = TABLE["velocity"]
VALIDATION_IDS = frozenset(TABLE["validation"])
TEST_IDS = frozenset(TABLE["test"])


def mt3_split(recording_id: str) -> str:
    if recording_id in VALIDATION_IDS:
        return "validation"
    return "test" if recording_id in TEST_IDS else "train"


def find_recordings(raw, labels="csv", em_dir=None, skip_incomplete=False, **_):
    raw = require_folder(raw, "MusicNet")
    if labels not in ("csv", "em"):
        raise DatasetLayoutError(f"MusicNet labels must be csv or em, got {labels!r}")
    if labels == "em" and (em_dir is None or not Path(em_dir).is_dir()):
        raise DatasetLayoutError(
            f"{em_dir}: give the unpacked musicnet_em folder of <id>.mid files"
        )
    wavs = sorted(raw.glob("train_data/*.wav")) + sorted(raw.glob("test_data/*.wav"))
    if not wavs:
        raise DatasetLayoutError(f"{raw}: no train_data/*.wav or test_data/*.wav")
    items, missing = [], []
    for wav in wavs:
        if labels == "csv":
            label = (
                wav.parent.parent / wav.parent.name.replace("_data", "_labels") / f"{wav.stem}.csv"
            )
        else:
            label = Path(em_dir) / f"{wav.stem}.mid"
        if not label.is_file():
            missing.append((wav.stem, str(label)))
        items.append(RawItem(wav.stem, mt3_split(wav.stem), {"audio": wav, "labels": label}))
    skipped = report_missing(raw, "MusicNet", missing, skip_incomplete)
    return [item for item in items if item.id not in skipped]


def read_label_csv(path: Path) -> Notes:
    rows = []
    try:
        with open(path, newline="") as f:
            for number, row in enumerate(csv.DictReader(f), start=2):
                start, end = int(row["start_time"]), int(row["end_time"])
                instrument, pitch = int(row["instrument"]), int(row["note"])
                if not (1 <= instrument <= 128 and 0 <= pitch <= 127 and end > start >= 0):
                    raise ValueError(f"line {number}: out-of-range values {dict(row)}")
                rows.append((start, end, pitch, instrument - 1))
    except (KeyError, ValueError, TypeError) as error:
        raise DatasetLayoutError(f"{path}: bad MusicNet label file ({error})") from None
    array = np.array(rows, dtype=np.float64).reshape(-1, 4)
    return Notes(
        start=array[:, 0] / LABEL_SAMPLE_RATE,
        end=array[:, 1] / LABEL_SAMPLE_RATE,
        pitch=array[:, 2],
        velocity=np.full(len(array), VELOCITY),
        program=array[:, 3],
        is_drum=np.zeros(len(array), bool),
    ).sorted()


def load_record(item: RawItem) -> Record:
    labels = item.paths["labels"]
    notes = read_midi(labels).notes if labels.suffix == ".mid" else read_label_csv(labels)
    metadata = {"dataset": "musicnet", "split": item.split, "labels": labels.suffix[1:]}
    return Record(item.id, load_int16(item.paths["audio"]), notes, metadata)


DATASETS = (
    Dataset("musicnet", "MusicNet: csv labels, or MusicNetEM MIDI (--labels em --em-dir DIR)",
            find_recordings, load_record,
            options=(Option("labels", "MusicNet labels: csv, or MusicNetEM MIDI", "csv",
                            choices=("csv", "em")),
                     Option("em_dir", "MusicNet: the unpacked musicnet_em folder"),
                     SKIP_INCOMPLETE),
            mixtures=(("mt3", 3),), paper_split="test"),
)  # fmt: skip

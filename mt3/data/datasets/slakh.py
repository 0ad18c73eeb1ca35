"""Slakh2100 (docs/mt3.md §4.5): `<root>/<split>/TrackXXXXX/` (orig, split2 or redux; `omitted/` is
skipped) or a flat `<root>/TrackXXXXX/` (BabySlakh, split by track number as Slakh2100-orig:
1-1500 train, 1501-1875 validation, 1876-2100 test). Each track has `metadata.yaml`,
`MIDI/Sxx.mid`, `stems/Sxx.flac|wav` and `mix.flac|wav`.

Records keep the stems (so sub-mixes can be drawn while training) with each note's stem. A stem
is used when both its audio and its MIDI file exist; one that metadata.yaml marks as rendered and
saved but whose file is missing is an error; unrendered stems (`audio_rendered: false`, e.g.
sound effects) are left out, with their notes.
Programs: drums are `is_drum`; every other stem gets the program of its Slakh instrument class
(MT3's table, docs/mt3.md §4.5). MT3 derived that class from data it did not publish; here it comes
from the stem's 0-based `program_num` by General MIDI sub-family (e.g. 30 Distortion Guitar ->
Distorted Electric Guitar 29, 1 Bright Piano -> Acoustic Piano 0); programs outside the 34 classes
(96-127) are kept as they are. Overlapping notes of the same pitch and program are trimmed in the
train split only, as MT3 does.
"""

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
from mt3.notes import Notes, concatenate, read_midi

SPLITS = ("train", "validation", "test")
AUDIO_SUFFIXES = (".flac", ".wav")
_TRACK = re.compile(r"^Track(\d{5})$")


TABLE = dataset_table("slakh")


def _class_program_table() -> np.ndarray:
    """0-based GM program -> program of its Slakh instrument class (MT3's table)."""
    table = np.arange(128)
    for low, high, program in TABLE["class_programs"]:
        table[low : high + 1] = program
    return table


CLASS_PROGRAM = _class_program_table()


def track_split(number: int) -> str:
    """Slakh2100-orig's split of a track number."""
    if number <= TABLE["train_last"]:
        return "train"
    return "validation" if number <= TABLE["validation_last"] else "test"


def _find_track_folders(raw: Path) -> list[tuple[Path, str]]:
    split_folders = [raw / s for s in SPLITS if (raw / s).is_dir()]
    if split_folders:
        return [
            (t, s.name) for s in split_folders for t in sorted(s.iterdir()) if _TRACK.match(t.name)
        ]
    return [(t, track_split(int(_TRACK.match(t.name).group(1)))) for t in sorted(raw.iterdir())
            if _TRACK.match(t.name)]  # fmt: skip


def _audio_file(stem_path: Path) -> Path | None:
    return next(
        (stem_path.with_suffix(s) for s in AUDIO_SUFFIXES if stem_path.with_suffix(s).is_file()),
        None,
    )


def read_metadata(path: Path) -> dict:
    import yaml

    try:
        metadata = yaml.safe_load(path.read_text())
        stems = metadata["stems"]
        for stem in stems.values():
            stem["program_num"], stem["is_drum"] = int(stem["program_num"]), bool(stem["is_drum"])
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as error:
        raise DatasetLayoutError(f"{path}: not a Slakh metadata.yaml ({error})") from None
    for name, stem in stems.items():
        if not stem["is_drum"] and not 0 <= stem["program_num"] <= 127:
            raise DatasetLayoutError(
                f"{path}: stem {name} has program_num {stem['program_num']}, outside 0..127"
            )
    return metadata


def find_tracks(raw, skip_incomplete: bool = False) -> list[tuple[Path, str, list[dict]]]:
    """(track folder, split, usable stems) per track, after checking every file."""
    raw = require_folder(raw, "Slakh2100")
    folders = _find_track_folders(raw)
    if not folders:
        raise DatasetLayoutError(
            f"{raw}: no TrackXXXXX folders (directly or in train/validation/test)"
        )
    tracks, missing = [], []
    for folder, split in folders:
        if not (folder / "metadata.yaml").is_file():
            missing.append((folder.name, f"{folder.name}/metadata.yaml"))
            continue
        stems = []
        for name, stem in sorted(read_metadata(folder / "metadata.yaml")["stems"].items()):
            audio, midi = _audio_file(folder / "stems" / name), folder / "MIDI" / f"{name}.mid"
            if audio is not None and midi.is_file():  # the files decide, not the flags
                stems.append({"name": name, "audio": audio, "midi": midi, **stem})
            elif stem.get("audio_rendered", True) and stem.get("midi_saved", True):
                if audio is None:
                    missing.append((folder.name, f"{folder.name}/stems/{name}.flac"))
                if not midi.is_file():
                    missing.append((folder.name, f"{folder.name}/MIDI/{name}.mid"))
        if stems:
            tracks.append((folder, split, stems))
    skipped = report_missing(raw, "Slakh2100", missing, skip_incomplete)
    return [track for track in tracks if track[0].name not in skipped]


def find_recordings(raw, skip_incomplete: bool = False, **_) -> list[RawItem]:
    return [
        RawItem(folder.name, split, {"folder": folder}, {"stems": stems})
        for folder, split, stems in find_tracks(raw, skip_incomplete)
    ]


def trim_overlapping_notes(notes: Notes) -> tuple[Notes, np.ndarray]:
    """Per (pitch, program, is_drum): end each note where the next one starts and drop notes
    that become empty (MT3's trim_overlapping_notes, for training data).

    Returns the kept notes (in their original order) and the boolean mask of kept notes.
    """
    order = np.lexsort((notes.start, notes.pitch, notes.program, notes.is_drum))
    same = (
        (notes.pitch[order][1:] == notes.pitch[order][:-1])
        & (notes.program[order][1:] == notes.program[order][:-1])
        & (notes.is_drum[order][1:] == notes.is_drum[order][:-1])
    )
    end = notes.end.copy()
    current, following = order[:-1][same], order[1:][same]
    end[current] = np.minimum(end[current], notes.start[following])
    keep = end > notes.start
    return notes.replace(end=end).select(keep), keep


def stem_notes(stem: dict) -> Notes:
    notes = read_midi(stem["midi"]).notes
    if stem["is_drum"]:
        return notes.replace(is_drum=np.ones(len(notes), bool), program=np.zeros(len(notes)))
    program = CLASS_PROGRAM[stem["program_num"]] if 0 <= stem["program_num"] < 128 else 0
    return notes.replace(is_drum=np.zeros(len(notes), bool), program=np.full(len(notes), program))


def build_record(record_id, split, stems, dataset, programs=None) -> Record:
    """A record of some stems: their sum as the mix, their notes, and the stems themselves."""
    audio = [load_int16(stem["audio"]).astype(np.int32) for stem in stems]
    length = max(a.size for a in audio)
    stacked = np.zeros((len(audio), length), np.int32)
    for row, a in enumerate(audio):
        stacked[row, : a.size] = a
    parts = []
    for index, stem in enumerate(stems):
        notes = stem_notes(stem)
        if programs is not None and not stem["is_drum"]:
            notes = notes.replace(program=np.full(len(notes), programs[index]))
        parts.append((notes, index))
    notes = concatenate([n for n, _ in parts])
    note_stems = (
        np.concatenate([np.full(len(n), i, np.int16) for n, i in parts])
        if parts
        else np.zeros(0, np.int16)
    )
    if split == "train":
        notes, keep = trim_overlapping_notes(notes)
        note_stems = note_stems[keep]
    mix = np.clip(stacked.sum(axis=0), -32768, 32767).astype(np.int16)
    fields = ("name", "program_num", "is_drum", "inst_class", "plugin_name")
    described = [{k: stem[k] for k in fields if k in stem} for stem in stems]
    metadata = {"dataset": dataset, "split": split, "stems": described}
    stems_int16 = stacked.clip(-32768, 32767).astype(np.int16)
    return Record(record_id, mix, notes, metadata, stems=stems_int16, note_stems=note_stems)


def load_record(item: RawItem) -> Record:
    return build_record(item.id, item.split, item.metadata["stems"], "slakh")


DATASETS = (
    Dataset("slakh", "Slakh2100 orig, redux or BabySlakh, flac or wav (stems kept for sub-mixes)",
            find_recordings, load_record, mixtures=(("mt3", 5),), paper_split="test"),
)  # fmt: skip

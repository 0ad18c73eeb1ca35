"""Generated datasets (`synth-piano`, `synth-ensemble`, `synth-band`, `synth-chorales`): pieces
from mt3.data.synth rendered to 16 kHz with a General MIDI soundfont: TimGM6mb, or Debian's
sf_GMbank for every other piece when it is installed (scripts/setup.sh installs it). Nothing is
read: ``raw`` is unused. Deterministic from ``seed``; pieces with index % 10 == 8 are validation,
== 9 test, the rest train."""

from __future__ import annotations

import numpy as np

from mt3.audio import SAMPLE_RATE
from mt3.data.datasets import Dataset, DatasetLayoutError, Option, RawItem
from mt3.data.records import Record, audio_to_int16
from mt3.data.synth import CHORALE_COUNT, KINDS, generate_piece

PEAK = 0.9


def split_of(index: int) -> str:
    return {8: "validation", 9: "test"}.get(index % 10, "train")


def find_recordings(raw=None, kind: str = "band", count: int = 100, seconds: float = 30.0,
                    seed: int = 0, **_) -> list[RawItem]:  # fmt: skip
    if kind not in KINDS:
        raise DatasetLayoutError(f"unknown synthetic kind {kind!r}; choose {', '.join(KINDS)}")
    if count < 1 or not seconds > 0:
        raise DatasetLayoutError("synthetic datasets need --count >= 1 and --seconds > 0")
    if kind == "chorales":  # one piece per chorale; the seed only varies programs and tempi
        count = min(count, CHORALE_COUNT)
    return [
        RawItem(f"{kind}-{seed}-{index:05d}", split_of(index), {},
                {"kind": kind, "seed": seed * CHORALE_COUNT + index if kind == "chorales"
                 else seed * 1_000_003 + index, "seconds": seconds})
        for index in range(count)
    ]  # fmt: skip


def load_record(item: RawItem) -> Record:
    from mt3.render import render_notes, training_soundfonts

    notes = generate_piece(item.metadata["kind"], item.metadata["seed"], item.metadata["seconds"])
    soundfonts = training_soundfonts()
    soundfont = soundfonts[item.metadata["seed"] % len(soundfonts)]
    audio = render_notes(notes, SAMPLE_RATE, soundfont).mean(axis=1)
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak > PEAK:  # keep headroom instead of clipping loud renders
        audio = audio * (PEAK / peak)
    metadata = {
        "dataset": f"synth-{item.metadata['kind']}", "split": item.split,
        "soundfont": soundfont.name, **item.metadata,
    }  # fmt: skip
    return Record(item.id, audio_to_int16(audio), notes, metadata)


OPTIONS = (
    Option("count", "synth-*: pieces to generate", 100, int),
    Option("seconds", "synth-*: piece length", 30.0, float),
    Option("seed", "synth-*: generator seed", 0, int),
)
SUMMARIES = {
    "piano": "generated piano pieces", "ensemble": "generated chamber ensembles",
    "band": "generated bands with drums", "chorales": "music21's 371 Bach chorales",
}  # fmt: skip
DATASETS = tuple(
    Dataset(f"synth-{kind}", f"{SUMMARIES[kind]}, rendered with a GM soundfont (no --raw)",
            find_recordings, load_record, options=OPTIONS, fixed={"kind": kind},
            needs_raw=False, mixtures=(("synth", position),))
    for position, kind in enumerate(KINDS)
)  # fmt: skip

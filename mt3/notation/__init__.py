"""Sheet music from notes: beat grid, metre, key, quantisation, parts, MusicXML, engraved pages.

    from mt3.notation import notate, write_musicxml, write_pages
    sheet = notate(notes)                       # Notes -> Sheet (music21 score, grid, key)
    write_musicxml(sheet, "song.musicxml")      # Sheet -> MusicXML
    write_pages(sheet, "song.score.pdf", "pdf") # Sheet -> engraved pages (svg, png, pdf)
    notate_file("take.mid", "take", ["musicxml", "pdf"])   # any MIDI: its own grid if it has one

The time grid comes from the notes (:mod:`mt3.notation.grid`) unless one is given; the score is
built by :mod:`mt3.notation.score` with music21; pages are engraved by verovio
(:mod:`mt3.notation.engrave`, the optional ``notation`` extra, imported only when pages are asked
for).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence
from pathlib import Path

from mt3.atomic import atomic_write_text, check_outputs
from mt3.notation.engrave import PAGE_FORMATS, NotationError
from mt3.notation.grid import (
    BeatGrid,
    Metre,
    TempoWarning,
    estimate_grid,
    grid_from_midi,
    midi_has_grid,
    uniform_grid,
)
from mt3.notation.score import Key, estimate_key, notes_to_score, score_to_musicxml
from mt3.notes import Notes

__all__ = [
    "PAGE_FORMATS", "SHEET_ALIASES", "SHEET_FORMATS", "BeatGrid", "Key", "Metre", "NotationError",
    "Sheet", "TempoWarning", "estimate_grid", "estimate_key", "grid_from_midi", "midi_has_grid",
    "notate", "notate_file", "uniform_grid", "write_musicxml", "write_pages", "write_sheet",
]  # fmt: skip

# Format name -> file suffix. The page formats are named score-* so they cannot be mistaken for
# the piano roll (`mt3 transcribe --format png`); `mt3 notate` also takes pdf, svg and png.
SHEET_FORMATS = {"musicxml": ".musicxml", "score-pdf": ".score.pdf", "score-svg": ".score.svg",
                 "score-png": ".score.png"}  # fmt: skip
SHEET_ALIASES = {"pdf": "score-pdf", "svg": "score-svg", "png": "score-png", "xml": "musicxml"}
GRID_CHOICES = ("auto", "midi", "estimate")


@dataclasses.dataclass(frozen=True)
class Sheet:
    """A score and what it was built from: the music21 Score, the beat grid and the key."""

    score: object  # music21.stream.Score
    grid: BeatGrid
    key: Key

    @functools.cached_property
    def musicxml(self) -> str:
        """The MusicXML text (made once; do not change ``score`` afterwards)."""
        return score_to_musicxml(self.score)


def notate(
    notes: Notes, *, grid: BeatGrid | None = None, key: Key | None = None, title: str = "",
    progress: bool | None = None,
) -> Sheet:  # fmt: skip
    """Notes (seconds) -> a Sheet. ``grid``/``key`` default to estimates from the notes;
    ``progress`` shows a bar (default: for long pieces)."""
    notes.validate()
    grid = estimate_grid(notes) if grid is None else grid
    key = estimate_key(notes) if key is None else key
    score = notes_to_score(notes, grid, key=key, title=title, progress=progress)
    return Sheet(score, grid, key)


def write_musicxml(sheet: Sheet, path: str | os.PathLike) -> None:
    atomic_write_text(path, sheet.musicxml)


def write_pages(sheet: Sheet, path: str | os.PathLike, fmt: str) -> None:
    """Engraved pages as 'svg', 'png' or 'pdf' (needs the notation extra)."""
    from mt3.notation.engrave import write_pages as engrave

    engrave(sheet.musicxml, path, fmt)


def write_sheet(sheet: Sheet, path: str | os.PathLike, fmt: str) -> None:
    """Write one of SHEET_FORMATS."""
    fmt = SHEET_ALIASES.get(fmt, fmt)
    if fmt == "musicxml":
        write_musicxml(sheet, path)
    elif fmt in SHEET_FORMATS:
        write_pages(sheet, path, fmt.removeprefix("score-"))
    else:
        raise NotationError(f"sheet formats are {', '.join(SHEET_FORMATS)}; got {fmt!r}")


def sheet_paths(base: str | os.PathLike, formats: Sequence[str]) -> list[Path]:
    """The file each sheet format writes for an output stem ``base``."""
    formats = [SHEET_ALIASES.get(f, f) for f in formats]
    unknown = [f for f in formats if f not in SHEET_FORMATS]
    if unknown or not formats:
        raise NotationError(f"--format takes {', '.join(SHEET_FORMATS)}; got {','.join(formats)!r}")
    base = Path(base)
    return [base.with_name(base.name + SHEET_FORMATS[f]) for f in formats]


def notate_file(
    path: str | os.PathLike, base: str | os.PathLike, formats: Sequence[str] = ("musicxml",), *,
    grid: str = "auto", title: str | None = None, overwrite: bool = False,
) -> tuple[Sheet, list[Path]]:  # fmt: skip
    """A MIDI (or notes JSON) file -> sheet files ``base`` + each format's suffix; existing
    files are an error unless ``overwrite``.

    ``grid``: 'midi' uses the file's tempo map and time signature, 'estimate' infers them from
    the onsets, 'auto' uses the file's grid when its notes sit on it (a sequencer's file) and
    estimates otherwise (a transcription written at a default tempo).
    """
    from mt3.notes import read_notes

    if grid not in GRID_CHOICES:
        raise NotationError(f"--grid takes {', '.join(GRID_CHOICES)}; got {grid!r}")
    paths = sheet_paths(base, formats)
    check_outputs(paths, [path], overwrite=overwrite)
    if not Path(path).is_file():
        raise NotationError(f"{path}: no such file; give a MIDI (.mid) or notes JSON file")
    notes = read_notes(path, sustain=False)  # written durations are key releases, not the pedal
    is_midi = Path(path).suffix.lower() in (".mid", ".midi")
    if grid == "midi" and not is_midi:
        raise NotationError(f"{path}: --grid midi needs a MIDI file")
    use_midi = is_midi and (grid == "midi" or (grid == "auto" and midi_has_grid(path, notes)))
    sheet = notate(
        notes, grid=grid_from_midi(path) if use_midi else None,
        title=Path(path).stem if title is None else title,
    )  # fmt: skip
    for fmt, out in zip(formats, paths):
        write_sheet(sheet, out, fmt)
    return sheet, paths

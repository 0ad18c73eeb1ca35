"""What a transcription can be written as: one registry of writers, by format name.

``mt3 transcribe --format``, ``mt3 evaluate --format``, their help texts and :func:`write_outputs`
all read ``WRITERS``; a new format is one :class:`Writer` entry. A writer gets the transcription
(``notes``, ``duration_seconds``, ``invalid_events``, ``dropped_events``: mt3.infer.Transcription),
the path to write, and optionally reference notes and a title. Every writer writes atomically.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

from mt3.errors import UsageError
from mt3.notes import Notes

RENDER_SAMPLE_RATE = 44100  # --format wav


@dataclasses.dataclass(frozen=True)
class Writer:
    name: str
    suffix: str
    help: str
    write: Callable[..., None]  # (transcription, path, *, reference, title) -> None


def _midi(transcription, path, **_):
    from mt3.notes import write_midi

    write_midi(transcription.notes, path)


def _json(transcription, path, **_):
    from mt3.notes import write_notes_json

    write_notes_json(
        transcription.notes, path, duration=transcription.duration_seconds,
        invalid_events=transcription.invalid_events, dropped_events=transcription.dropped_events,
    )  # fmt: skip


def _png(transcription, path, *, reference=None, title=""):
    from mt3.pianoroll import plot_piano_roll

    plot_piano_roll(transcription.notes, path, reference=reference, title=title)


def _wav(transcription, path, **_):
    from mt3.render import render_notes, write_wav

    write_wav(render_notes(transcription.notes, RENDER_SAMPLE_RATE), RENDER_SAMPLE_RATE, path)


_last_sheet: list = []  # (transcription, sheet): several sheet formats notate once


def _sheet(fmt):
    def write(transcription, path, *, title="", **_):
        from mt3.notation import notate, write_sheet

        if not (_last_sheet and _last_sheet[0] is transcription):
            name = Path(title).stem if title else Path(path).name.split(".")[0]
            _last_sheet[:] = [transcription, notate(transcription.notes, title=name)]
        write_sheet(_last_sheet[1], path, fmt)

    return write


WRITERS = {
    writer.name: writer
    for writer in (
        Writer("midi", ".mid", "multi-instrument MIDI", _midi),
        Writer("json", ".json", "the notes as JSON, with the decoder's counters", _json),
        Writer("png", ".png", "a piano roll (drawn over the reference, if any)", _png),
        Writer("wav", ".wav", "the transcription rendered with a General MIDI soundfont", _wav),
        Writer(
            "musicxml",
            ".musicxml",
            "sheet music: MusicXML with tempo, metre, key and parts",
            _sheet("musicxml"),
        ),  # fmt: skip
        Writer("score-pdf", ".score.pdf", "sheet music engraved as PDF pages", _sheet("score-pdf")),
        Writer("score-svg", ".score.svg", "sheet music as SVG pages", _sheet("score-svg")),
        Writer("score-png", ".score.png", "sheet music as PNG pages", _sheet("score-png")),
    )
}


def formats_help() -> str:
    """``name (what it writes)`` for every format, for option help texts."""
    return "; ".join(f"{w.name} ({w.help})" for w in WRITERS.values())


def parse_formats(text: str, option: str = "--format", *, allow_empty: bool = False) -> list[str]:
    """'midi,png' -> ['midi', 'png']; a UsageError names the option and the known formats."""
    formats = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in formats if f not in WRITERS]
    if unknown or not (formats or allow_empty):
        raise UsageError(f"{option} takes {', '.join(WRITERS)}; got {text!r}")
    return formats


def output_paths(base: str | os.PathLike, formats) -> list[Path]:
    """The file each format writes for an output stem ``base``."""
    stem = Path(base).with_suffix("")  # as with_suffix, which refuses two-part suffixes
    return [stem.with_name(stem.name + WRITERS[f].suffix) for f in formats]


def write_outputs(
    transcription, base: str | os.PathLike, formats=("midi",), *,
    reference: Notes | None = None, title: str = "",
) -> list[Path]:  # fmt: skip
    """Write ``base`` + each format's suffix; returns the paths written."""
    parse_formats(",".join(formats), "formats", allow_empty=True)
    paths = output_paths(base, formats)
    for fmt, path in zip(formats, paths):
        WRITERS[fmt].write(transcription, path, reference=reference, title=title)
    return paths

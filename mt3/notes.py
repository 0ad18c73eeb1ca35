"""Notes as a struct of arrays, MIDI and JSON input/output, and MT3's sustain-pedal rule.

MIDI is parsed with pretty_midi, the parser behind note-seq's ``midi_file_to_note_sequence``, so
notes come out in the same order MT3 sees them (instrument by instrument, in pretty_midi's order),
which matters for token order when two notes share a time, pitch and program. The sustain pedal
(CC64 >= 64 is down) is applied per MIDI instrument the way note-seq's
``apply_sustain_control_changes`` does it, including its corner cases (docs/mt3.md §2.5;
docs/goldens.md, codec behaviour 8):

- a note released while the pedal is down lasts until the pedal goes up, or until the same pitch is
  struck again on that instrument, whichever is first;
- a re-strike at the very start time of a held note deletes the held note;
- notes still held when the file ends stop at the time of the last note or pedal event;
- drum notes are never extended.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from mt3.atomic import atomic_write_bytes, atomic_write_text
from mt3.errors import Mt3Error

SUSTAIN_CONTROL = 64
SUSTAIN_THRESHOLD = 64  # CC64 values >= this hold the pedal down.
DRUM_CHANNEL = 9  # 0-based; "channel 10" in MIDI documentation.
MIDI_TICKS_PER_QUARTER = 480
MIDI_TEMPO_BPM = 120.0
# The longest music any command takes: notes ending later, or longer --duration values, are
# refused before anything is allocated (a 52-byte MIDI could otherwise ask for terabytes).
MAX_SECONDS = 24 * 3600.0


class MidiError(Mt3Error, ValueError):
    """A MIDI file that cannot be read or written."""


class NotesError(Mt3Error, ValueError):
    """Notes that break an invariant (negative times, out-of-range pitch, malformed JSON)."""


_FIELDS = ("start", "end", "pitch", "velocity", "program", "is_drum")
_DTYPES = {
    "start": np.float64,
    "end": np.float64,
    "pitch": np.int16,
    "velocity": np.int16,
    "program": np.int16,
    "is_drum": np.bool_,
}


@dataclasses.dataclass(frozen=True, eq=False)
class Notes:
    """A set of notes as parallel arrays; times in seconds, GM programs 0-based.

    Attributes:
      start, end: float64 [n] onset and offset times in seconds.
      pitch: int16 [n] MIDI pitch (for drums, the GM drum key).
      velocity: int16 [n] MIDI velocity 1..127.
      program: int16 [n] GM program 0..127 (0 for drums unless a file says otherwise).
      is_drum: bool [n].
    """

    start: np.ndarray
    end: np.ndarray
    pitch: np.ndarray
    velocity: np.ndarray
    program: np.ndarray
    is_drum: np.ndarray

    def __post_init__(self):
        lengths = set()
        for field in _FIELDS:
            array = np.ascontiguousarray(getattr(self, field), dtype=_DTYPES[field]).reshape(-1)
            array.setflags(write=False)
            object.__setattr__(self, field, array)
            lengths.add(len(array))
        if len(lengths) > 1:
            raise NotesError(f"Notes arrays differ in length: {sorted(lengths)}")

    @classmethod
    def empty(cls) -> Notes:
        return cls(*(np.zeros(0, _DTYPES[f]) for f in _FIELDS))

    @classmethod
    def from_records(cls, records: Iterable[dict]) -> Notes:
        """From dicts with keys start/end (or start_time/end_time), pitch, velocity, program,
        is_drum; velocity defaults to 100, program to 0, is_drum to False."""
        columns = {f: [] for f in _FIELDS}
        for record in records:
            columns["start"].append(record["start"] if "start" in record else record["start_time"])
            columns["end"].append(record["end"] if "end" in record else record["end_time"])
            columns["pitch"].append(record["pitch"])
            columns["velocity"].append(record.get("velocity", 100))
            columns["program"].append(record.get("program", 0))
            columns["is_drum"].append(bool(record.get("is_drum", False)))
        return cls(**{f: np.array(columns[f], dtype=_DTYPES[f]) for f in _FIELDS})

    def to_records(self) -> list[dict]:
        """A list of plain-Python dicts (JSON-ready)."""
        return [
            {
                "start": float(s),
                "end": float(e),
                "pitch": int(p),
                "velocity": int(v),
                "program": int(q),
                "is_drum": bool(d),
            }
            for s, e, p, v, q, d in zip(
                self.start, self.end, self.pitch, self.velocity, self.program, self.is_drum
            )
        ]

    def __len__(self) -> int:
        return len(self.start)

    def __repr__(self) -> str:
        programs = sorted(set(self.program[~self.is_drum].tolist()))
        return (
            f"Notes({len(self)} notes, {int(self.is_drum.sum())} drums, programs={programs}, "
            f"end={self.end_time:.3f}s)"
        )

    @property
    def end_time(self) -> float:
        """Latest offset in seconds (0 when empty)."""
        return float(self.end.max()) if len(self) else 0.0

    def select(self, mask_or_index) -> Notes:
        """The notes picked by a boolean mask or an index array, in that order."""
        return Notes(*(getattr(self, f)[mask_or_index] for f in _FIELDS))

    def replace(self, **arrays) -> Notes:
        return dataclasses.replace(self, **arrays)

    def sorted(self) -> Notes:
        """Sorted by (start, pitch, program, is_drum, end, velocity)."""
        order = np.lexsort(
            (self.velocity, self.end, self.is_drum, self.program, self.pitch, self.start)
        )
        return self.select(order)

    def validate(self) -> None:
        """Raise NotesError unless every value is in range (times >= 0, pitch and program 0..127,
        velocity 0..127); zero-length notes are allowed here."""
        problems = []
        if len(self) and (not np.all(np.isfinite(self.start)) or not np.all(np.isfinite(self.end))):
            problems.append("non-finite times")
        if np.any(self.start < 0):
            problems.append("negative start times")
        if np.any(self.end < self.start):
            problems.append("notes ending before they start")
        if len(self) and np.nanmax(self.end) > MAX_SECONDS:
            problems.append(f"a note ends at {np.nanmax(self.end):.6g} s, beyond 24 hours")
        for field, high in (("pitch", 127), ("program", 127), ("velocity", 127)):
            values = getattr(self, field)
            if np.any((values < 0) | (values > high)):
                problems.append(f"{field} outside 0..{high}")
        if problems:
            raise NotesError("invalid notes: " + ", ".join(problems))

    def __eq__(self, other) -> bool:
        if not isinstance(other, Notes):
            return NotImplemented
        return all(np.array_equal(getattr(self, f), getattr(other, f)) for f in _FIELDS)


def concatenate(parts: Sequence[Notes]) -> Notes:
    """All notes of several Notes, in order."""
    if not parts:
        return Notes.empty()
    return Notes(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))


# ----------------------------------------------------------------------------------------------
# MIDI reading and the sustain pedal


@dataclasses.dataclass(frozen=True)
class MidiNotes:
    """Notes read from a MIDI file, and the file's end time as note-seq computes it.

    ``end_time`` is note-seq's ``total_time``: the latest note offset, moved by the sustain rule
    when the pedal is applied. It is MT3's default audio length for a MIDI file.
    """

    notes: Notes
    end_time: float


def read_midi(path: str | os.PathLike, *, sustain: bool = True) -> MidiNotes:
    """Read every track of a MIDI file; programs from program changes, drums from channel 10.

    Args:
      path: a .mid/.midi file.
      sustain: apply CC64 sustain pedal the way MT3 does (docs/mt3.md §2.5). Pass False for
        estimates, which carry no pedal.
    """
    import pretty_midi  # Imported here: it is slow to import and not every command needs it.

    path = Path(path)
    if not path.is_file():
        raise MidiError(f"{path}: no such MIDI file")
    try:
        midi = pretty_midi.PrettyMIDI(str(path))
    except Exception as error:  # pretty_midi/mido raise many types for malformed files.
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if "empty sequence" in reason:  # pretty_midi's max() over no tracks
            reason = "it has no tracks"
        raise MidiError(
            f"{path}: not a readable MIDI file ({reason}); check that it is a Standard MIDI File"
        ) from None

    columns = {f: [] for f in _FIELDS}
    instrument_of_note = []
    pedal_times, pedal_down, pedal_instrument = [], [], []
    for index, instrument in enumerate(midi.instruments):
        for note in instrument.notes:
            columns["start"].append(note.start)
            columns["end"].append(note.end)
            columns["pitch"].append(note.pitch)
            columns["velocity"].append(note.velocity)
            columns["program"].append(instrument.program)
            columns["is_drum"].append(instrument.is_drum)
            instrument_of_note.append(index)
        for change in instrument.control_changes:
            if change.number == SUSTAIN_CONTROL:
                pedal_times.append(change.time)
                pedal_down.append(change.value >= SUSTAIN_THRESHOLD)
                pedal_instrument.append(index)
    notes = Notes(**{f: np.array(columns[f], dtype=_DTYPES[f]) for f in _FIELDS})
    try:
        notes.validate()
    except NotesError as error:
        raise MidiError(f"{path}: {error}") from None
    end_time = notes.end_time
    if sustain:
        notes, end_time = apply_sustain(
            notes,
            np.array(instrument_of_note, dtype=np.int64),
            np.array(pedal_times, dtype=np.float64),
            np.array(pedal_down, dtype=bool),
            np.array(pedal_instrument, dtype=np.int64),
        )
    if end_time > MAX_SECONDS:
        raise MidiError(f"{path}: the music ends at {end_time:.6g} s, beyond 24 hours")
    return MidiNotes(notes, end_time)


_PEDAL_DOWN, _PEDAL_UP, _NOTE_ON, _NOTE_OFF = 0, 1, 2, 3  # processing order at equal times


def apply_sustain(
    notes: Notes,
    instrument: np.ndarray,
    pedal_times: np.ndarray,
    pedal_down: np.ndarray,
    pedal_instrument: np.ndarray,
) -> tuple[Notes, float]:
    """Lengthen notes held by the sustain pedal, per instrument (note-seq's rule; module doc).

    Args:
      notes: the notes, in file order.
      instrument: int [n] instrument (track/channel/program group) index of each note.
      pedal_times, pedal_down, pedal_instrument: one entry per CC64 event.

    Returns:
      The sustained notes (file order, deleted notes removed) and the new end time.
    """
    end = notes.end.copy()
    end_time = notes.end_time
    melodic = np.flatnonzero(~notes.is_drum)
    # Events sorted by (time, kind); Python's sort is stable, so ties keep insertion order:
    # all onsets, then all offsets, then pedal events, as note-seq builds them.
    events = [(notes.start[i], _NOTE_ON, i) for i in melodic]
    events += [(notes.end[i], _NOTE_OFF, i) for i in melodic]
    events += [
        (t, _PEDAL_DOWN if down else _PEDAL_UP, k)
        for t, down, k in zip(pedal_times.tolist(), pedal_down.tolist(), pedal_instrument.tolist())
    ]
    events.sort(key=lambda event: (event[0], event[1]))

    active: dict[int, list[int]] = {}
    pedal: dict[int, bool] = {}
    deleted = []
    time = 0.0
    for time, kind, index in events:
        if kind == _PEDAL_DOWN:
            pedal[index] = True
        elif kind == _PEDAL_UP:
            pedal[index] = False
            held = active.get(index, [])
            still = []
            for note in held:
                if end[note] < time:  # released earlier, held only by the pedal
                    end[note] = time
                    end_time = max(end_time, time)
                else:
                    still.append(note)
            active[index] = still
        elif kind == _NOTE_ON:
            group = instrument[index]
            held = active.setdefault(group, [])
            if pedal.get(group, False):
                still = []
                for note in held:
                    if notes.pitch[note] == notes.pitch[index]:
                        end[note] = time
                        if notes.start[note] == time:
                            deleted.append(note)
                    else:
                        still.append(note)
                held[:] = still
            held.append(index)
        else:  # _NOTE_OFF
            group = instrument[index]
            if not pedal.get(group, False):
                held = active.get(group, [])
                if index in held:
                    held.remove(index)
    for held in active.values():
        for note in held:
            end[note] = time
            end_time = time
    keep = np.ones(len(notes), dtype=bool)
    keep[deleted] = False
    return notes.replace(end=end).select(keep), float(end_time)


# ----------------------------------------------------------------------------------------------
# MIDI writing


def notes_to_pretty_midi(notes: Notes):
    """A pretty_midi.PrettyMIDI with one track per (program, is_drum); drums on channel 10."""
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(resolution=MIDI_TICKS_PER_QUARTER, initial_tempo=MIDI_TEMPO_BPM)
    keys = sorted(set(zip(notes.is_drum.tolist(), notes.program.tolist())))
    for is_drum, program in keys:
        if is_drum:
            name = "Drums"
        else:
            name = pretty_midi.program_to_instrument_name(program)
        track = pretty_midi.Instrument(program=program, is_drum=is_drum, name=name)
        mask = (notes.is_drum == is_drum) & (notes.program == program)
        group = notes.select(mask).sorted()
        for s, e, p, v in zip(group.start, group.end, group.pitch, group.velocity):
            track.notes.append(
                pretty_midi.Note(
                    velocity=int(max(v, 1)), pitch=int(p), start=float(s), end=float(e)
                )
            )
        midi.instruments.append(track)
    return midi


def write_midi(notes: Notes, path: str | os.PathLike) -> None:
    """Write a type-1 MIDI file (120 bpm, 480 ticks per quarter) atomically.

    Each (program, is_drum) gets its own track and program change; pretty_midi gives drums
    channel 10 and spreads the other tracks over the remaining channels.
    """
    import io

    notes.validate()
    buffer = io.BytesIO()
    notes_to_pretty_midi(notes).write(buffer)
    atomic_write_bytes(path, buffer.getvalue())


# ----------------------------------------------------------------------------------------------
# JSON


def write_notes_json(notes: Notes, path: str | os.PathLike, **extra) -> None:
    """Write ``{"notes": [{start, end, pitch, velocity, program, is_drum}, ...], **extra}``."""
    payload = dict(extra)
    payload["notes"] = notes.to_records()
    atomic_write_text(path, json.dumps(payload, indent=1) + "\n")


def read_notes_json(path: str | os.PathLike) -> Notes:
    """Read notes written by :func:`write_notes_json`, or a bare JSON list of note objects."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text())
        records = payload["notes"] if isinstance(payload, dict) else payload
        notes = Notes.from_records(records)
    except FileNotFoundError:
        raise NotesError(f"{path}: no such file") from None
    except (ValueError, KeyError, TypeError) as error:
        raise NotesError(
            f"{path}: not a notes JSON file ({type(error).__name__}: {error}); expected "
            '{"notes": [{"start", "end", "pitch", "velocity", "program", "is_drum"}, ...]}'
        ) from None
    try:
        notes.validate()
    except NotesError as error:
        raise NotesError(f"{path}: {error}") from None
    return notes


def read_notes(path: str | os.PathLike, *, sustain: bool = True) -> Notes:
    """Notes from a MIDI file (.mid/.midi, sustain applied if asked) or a notes JSON file."""
    if Path(path).suffix.lower() == ".json":
        return read_notes_json(path)
    return read_midi(path, sustain=sustain).notes

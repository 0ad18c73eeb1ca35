"""Notes, MIDI reading with MT3's sustain rule, MIDI/JSON writing."""

from __future__ import annotations

import json

import numpy as np
import pretty_midi
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mt3.notes import (
    MidiError,
    Notes,
    NotesError,
    read_midi,
    read_notes,
    read_notes_json,
    write_midi,
    write_notes_json,
)


def write_pretty(path, tracks, pedal=()):
    """tracks: [(program, is_drum, [(start, end, pitch, velocity)])]; pedal: [(time, value)] on
    the first track."""
    midi = pretty_midi.PrettyMIDI(resolution=1000, initial_tempo=120)
    for index, (program, is_drum, notes) in enumerate(tracks):
        track = pretty_midi.Instrument(program=program, is_drum=is_drum)
        track.notes = [pretty_midi.Note(v, p, s, e) for s, e, p, v in notes]
        if index == 0:
            track.control_changes = [pretty_midi.ControlChange(64, v, t) for t, v in pedal]
        midi.instruments.append(track)
    midi.write(str(path))


def test_sustain_matches_note_seq_on_mt3_inputs(golden_dir):
    folder = golden_dir("codec")
    for midi_path in sorted((folder / "inputs").glob("*.mid")):
        golden = json.loads((folder / f"{midi_path.stem}.notes.json").read_text())
        midi = read_midi(midi_path)
        assert midi.notes.sorted() == Notes.from_records(golden["notes"]).sorted(), midi_path.name
        if "__dur" not in midi_path.stem:
            assert midi.end_time == golden["duration"], midi_path.name


def test_sustain_rules(tmp_path):
    path = tmp_path / "pedal.mid"
    write_pretty(
        path,
        [
            (
                0,
                False,
                [(0.0, 0.5, 60, 100), (1.0, 1.2, 62, 90), (1.5, 1.6, 62, 80), (2.5, 3.0, 64, 70)],
            ),
            (0, True, [(0.2, 0.3, 36, 100)]),
        ],
        pedal=[(0.25, 127), (0.8, 0), (0.9, 100)],
    )
    notes = read_midi(path).notes.sorted()
    by_pitch = {
        (int(p), float(s)): float(e) for p, s, e in zip(notes.pitch, notes.start, notes.end)
    }
    assert by_pitch[(60, 0.0)] == 0.8  # released under the pedal: lasts until the pedal is up
    assert by_pitch[(62, 1.0)] == 1.5  # re-struck under the pedal: ends at the re-strike
    assert by_pitch[(62, 1.5)] == 3.0  # pedal never released: ends at the last event
    assert by_pitch[(64, 2.5)] == 3.0
    assert by_pitch[(36, 0.2)] == 0.3  # drums are never extended
    assert read_midi(path).end_time == 3.0
    raw = read_midi(path, sustain=False).notes.sorted()
    assert sorted(raw.end.tolist()) == [0.3, 0.5, 1.2, 1.6, 3.0]


@st.composite
def random_notes(draw):
    rows = []
    for _ in range(draw(st.integers(0, 30))):
        is_drum = draw(st.booleans())
        start = draw(st.integers(0, 4000)) / 480  # on the tick grid (480 per quarter at 120 bpm)
        rows.append(
            {
                "start": start,
                "end": start + draw(st.integers(1, 2000)) / 480,
                "pitch": draw(st.integers(0, 127)),
                "velocity": draw(st.integers(1, 127)),
                "program": 0 if is_drum else draw(st.sampled_from([0, 5, 24, 33, 40, 127])),
                "is_drum": is_drum,
            }
        )
    return Notes.from_records(rows)


@settings(max_examples=40, deadline=None)
@given(random_notes())
def test_midi_round_trip(tmp_path_factory, notes):
    # Same-key notes that overlap cannot survive MIDI (note-offs pair with the latest note-on).
    notes = notes.select(_no_same_key_overlap(notes))
    path = tmp_path_factory.mktemp("midi") / "round.mid"
    write_midi(notes, path)
    back = read_midi(path, sustain=False).notes
    assert len(back) == len(notes)
    a, b = back.sorted(), notes.sorted()
    np.testing.assert_allclose(a.start, b.start, atol=1e-6)
    np.testing.assert_allclose(a.end, b.end, atol=1e-6)
    for field in ("pitch", "velocity", "program", "is_drum"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def _no_same_key_overlap(notes: Notes) -> np.ndarray:
    keep = np.ones(len(notes), bool)
    seen: dict = {}
    for i in range(len(notes)):
        key = (notes.pitch[i], notes.program[i], notes.is_drum[i])
        spans = seen.setdefault(key, [])
        if any(s <= notes.end[i] and notes.start[i] <= e for s, e in spans):
            keep[i] = False
        else:
            spans.append((notes.start[i], notes.end[i]))
    return keep


def test_written_midi_layout(tmp_path):
    notes = Notes.from_records(
        [
            {"start": 0, "end": 1, "pitch": 60, "program": 0},
            {"start": 0, "end": 1, "pitch": 40, "program": 33},
            {"start": 0.5, "end": 0.51, "pitch": 36, "program": 0, "is_drum": True},
        ]
    )
    path = tmp_path / "out.mid"
    write_midi(notes, path)
    midi = pretty_midi.PrettyMIDI(str(path))
    layout = sorted((i.program, i.is_drum, len(i.notes)) for i in midi.instruments)
    assert layout == [(0, False, 1), (0, True, 1), (33, False, 1)]
    import mido

    channels = {
        msg.channel
        for track in mido.MidiFile(str(path)).tracks
        for msg in track
        if msg.type == "note_on" and msg.note == 36
    }
    assert channels == {9}  # drums on MIDI channel 10
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left behind


def test_json_round_trip(tmp_path):
    notes = Notes.from_records(
        [{"start": 0.25, "end": 1.5, "pitch": 61, "velocity": 90, "program": 40, "is_drum": False}]
    )
    path = tmp_path / "notes.json"
    write_notes_json(notes, path, source="test")
    assert json.loads(path.read_text())["source"] == "test"
    assert read_notes_json(path) == notes
    assert read_notes(path) == notes
    path.write_text(json.dumps(notes.to_records()))  # a bare list also reads
    assert read_notes_json(path) == notes


@pytest.mark.parametrize(
    "content",
    [b"", b"not a midi file", b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\x00\x00\xff\xff"],
)
def test_malformed_midi_is_a_clear_error(tmp_path, content):
    path = tmp_path / "broken.mid"
    path.write_bytes(content)
    with pytest.raises(MidiError, match="broken.mid: not a readable MIDI file"):
        read_midi(path)


def test_missing_midi_and_bad_json(tmp_path):
    with pytest.raises(MidiError, match="no such MIDI file"):
        read_midi(tmp_path / "absent.mid")
    bad = tmp_path / "bad.json"
    bad.write_text('{"notes": [{"start": 0}]}')
    with pytest.raises(NotesError, match="bad.json: not a notes JSON file"):
        read_notes_json(bad)
    bad.write_text('[{"start": 0, "end": 1, "pitch": 200}]')
    with pytest.raises(NotesError, match="pitch outside"):
        read_notes_json(bad)

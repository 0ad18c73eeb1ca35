"""Notes <-> tokens: MT3's worked example (docs/mt3.md §2.7), hand-made edge cases, a round-trip
property and the original MT3 pipeline's outputs (../shared/golden/codec)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mt3.events import (
    EncodingError,
    notes_to_segment_tokens,
    segment_tokens_to_notes,
)
from mt3.notes import Notes


def make_notes(*rows):
    """rows: (start, end, pitch, velocity, program, is_drum)."""
    return Notes.from_records(
        dict(zip(("start", "end", "pitch", "velocity", "program", "is_drum"), row)) for row in rows
    )


def test_worked_example_mt3():
    # Spec §2.7, in the segment that starts at frame 256 (2.048 s, first step 204 = 2.04 s): a
    # guitar note from the previous segment ends 0.30 s in; piano 0.50-1.00 s; a hi-hat at 0.50 s.
    t0 = 2.04
    notes = make_notes(
        (1.0, t0 + 0.30, 64, 100, 24, False),
        (t0 + 0.50, t0 + 1.00, 60, 100, 0, False),
        (t0 + 0.50, t0 + 0.60, 42, 100, 0, True),
    )
    segments = notes_to_segment_tokens(notes, "mt3", num_samples=4 * 16000, segment_frames=256)
    assert segments[1].start_time == 2.048
    assert segments[1].tokens == [
        1159, 1068, 1134,  # tie section: program 24, pitch 64, tie
        33, 1132, 1068,  # 0.30 s: shift 30, velocity 0, pitch 64 (program 24 redundant)
        53, 1135, 1133, 1064, 1305,  # 0.50 s: program 0, velocity 1, pitch 60, drum 42
        103, 1132, 1064,  # 1.00 s: velocity 0, pitch 60
        1,
    ]  # fmt: skip


def test_worked_example_ismir2021():
    notes = make_notes((0.5, 1.0, 60, 80, 0, False))
    [segment] = notes_to_segment_tokens(notes, "ismir2021", num_samples=16000, segment_frames=512)
    assert segment.tokens == [53, 1212, 1064, 103, 1132, 1064, 1]


def test_shift_values_are_absolute_and_split_above_1000():
    # One 12 s segment (the last one receives every later event): the note-off at 11.5 s is
    # 1150 steps after the segment start, written as shift 1000 + shift 150.
    notes = make_notes((0.25, 11.5, 60, 100, 0, False), (0.25, 0.5, 62, 100, 0, False))
    [segment] = notes_to_segment_tokens(notes, "mt3", num_samples=16000, segment_frames=256)
    assert segment.tokens == [
        1134, 28, 1135, 1133, 1064, 1066, 53, 1132, 1066, 1003, 153, 1064, 1,
    ]  # fmt: skip


def test_half_steps_round_to_even():
    notes = make_notes(
        (0.125, 0.2, 60, 100, 0, False),  # step 12.5 -> 12
        (0.375, 0.4, 61, 100, 0, False),  # 37.5 -> 38
    )
    [segment] = notes_to_segment_tokens(notes, "ismir2021", num_samples=16000, segment_frames=512)
    shifts = [t - 3 for t in segment.tokens if 3 <= t <= 1003]
    assert shifts == [12, 20, 38, 40]


def test_offsets_before_onsets_and_drums_without_offsets():
    notes = make_notes(
        (0.0, 0.5, 60, 100, 0, False),
        (0.5, 1.0, 60, 100, 0, False),  # re-strike at the same step as the offset
        (0.5, 0.9, 36, 100, 0, True),
    )
    [segment] = notes_to_segment_tokens(notes, "mt3", num_samples=16000, segment_frames=256)
    assert segment.tokens == [
        1134, 1135, 1133, 1064,  # tie, program 0, velocity 1, pitch 60
        53, 1132, 1064, 1133, 1064, 1299,  # 0.5 s: off 60, on 60, drum 36
        103, 1132, 1064, 1,  # 1.0 s: off 60
    ]  # fmt: skip


def test_empty_recording_with_ties_gives_tie_and_eos():
    # MT3 crashes here (docs/goldens.md, codec behaviour 1); a tie and EOS is the correct target.
    [segment] = notes_to_segment_tokens(Notes.empty(), "mt3", num_samples=0, segment_frames=256)
    assert segment.tokens == [1134, 1]


def test_invalid_notes_are_rejected():
    for row in [(1.0, 1.0, 60, 100, 0, False), (0.0, 1.0, 60, 0, 0, False)]:
        with pytest.raises(EncodingError, match="cannot be encoded"):
            notes_to_segment_tokens(make_notes(row), "mt3", num_samples=16000, segment_frames=256)


def test_too_many_tokens_is_an_error():
    rows = [(0.001 * i, 0.001 * i + 0.5, 20 + i % 80, 100, i % 128, False) for i in range(400)]
    with pytest.raises(EncodingError, match="more than the decoder's 1024"):
        notes_to_segment_tokens(make_notes(*rows), "mt3", num_samples=16000, segment_frames=256)


def test_decoder_counts_invalid_and_dropped_events():
    # Segment 0: note-off for an inactive pitch (invalid), PAD and an extra id (invalid), then a
    # shift past the next segment's start: the shift and the two tokens after it are dropped.
    segments = [
        (0.0, [1134, 1132, 1064, 0, 1400, 1133, 1065, 208, 1132, 1065, 1]),
        (2.048, [1134, 1]),
    ]
    result = segment_tokens_to_notes(segments, "mt3")
    assert result.invalid_events == 3
    assert result.dropped_events == 3
    # The open note is ended by segment 1's tie section (not re-declared) at 2.04 s.
    assert result.notes.to_records() == [
        {"start": 0.0, "end": 2.04, "pitch": 61, "velocity": 127, "program": 0, "is_drum": False}
    ]


def test_decoder_flush_and_minimum_duration():
    result = segment_tokens_to_notes([(0.0, [1134, 1133, 1064, 1133, 1299, 1])], "mt3")
    records = result.notes.to_records()
    assert [(r["pitch"], r["start"], r["end"], r["is_drum"]) for r in records] == [
        (36, 0.0, 0.01, True),
        (60, 0.0, 0.01, False),
    ]


# ----------------------------------------------------------------------------------------------
# Round trip


@st.composite
def quantised_notes(draw, programs, velocities):
    """Notes on the 10 ms grid with no overlapping notes of the same (pitch, program)."""
    count = draw(st.integers(0, 40))
    rows, busy = [], {}
    for _ in range(count):
        is_drum = draw(st.booleans()) and draw(st.booleans())
        pitch = draw(st.integers(0, 127))
        program = 0 if is_drum else draw(st.sampled_from(programs))
        start = draw(st.integers(0, 1500))
        length = 1 if is_drum else draw(st.integers(1, 1200))
        if not is_drum:
            if any(a < start + length and start < b for a, b in busy.get((pitch, program), [])):
                continue
            busy.setdefault((pitch, program), []).append((start, start + length))
        velocity = draw(st.sampled_from(velocities))
        rows.append((start / 100, (start + length) / 100, pitch, velocity, program, is_drum))
    return make_notes(*rows) if rows else Notes.empty()


def expected_decoding(notes: Notes, velocity_of) -> Notes:
    return notes.replace(
        end=np.where(notes.is_drum, notes.start + 0.01, notes.end),
        velocity=np.array([velocity_of(v) for v in notes.velocity], dtype=np.int16),
    ).sorted()


def assert_same_notes(actual: Notes, expected: Notes):
    actual, expected = actual.sorted(), expected.sorted()
    assert len(actual) == len(expected)
    np.testing.assert_allclose(actual.start, expected.start, atol=1e-9)
    np.testing.assert_allclose(actual.end, expected.end, atol=1e-9)
    for field in ("pitch", "velocity", "program", "is_drum"):
        np.testing.assert_array_equal(getattr(actual, field), getattr(expected, field))


@settings(max_examples=60, deadline=None)
@given(quantised_notes(programs=[0, 24, 33, 40, 127], velocities=[1, 64, 127]))
def test_round_trip_mt3(notes):
    duration_samples = round((notes.end_time + 0.5) * 16000)
    segments = notes_to_segment_tokens(
        notes, "mt3", num_samples=duration_samples, segment_frames=256
    )
    result = segment_tokens_to_notes([(s.start_time, s.tokens) for s in segments], "mt3")
    assert result.invalid_events == 0 and result.dropped_events == 0
    assert_same_notes(result.notes, expected_decoding(notes, lambda v: 127))


@settings(max_examples=60, deadline=None)
@given(quantised_notes(programs=[0], velocities=[1, 33, 80, 127]))
def test_round_trip_ismir2021(notes):
    duration_samples = round((notes.end_time + 0.5) * 16000)
    segments = notes_to_segment_tokens(
        notes, "ismir2021", num_samples=duration_samples, segment_frames=512
    )
    result = segment_tokens_to_notes([(s.start_time, s.tokens) for s in segments], "ismir2021")
    assert result.invalid_events == 0 and result.dropped_events == 0
    assert_same_notes(result.notes, expected_decoding(notes, lambda v: v))


# ----------------------------------------------------------------------------------------------
# The original MT3 pipeline's outputs


def codec_cases(golden_dir):
    folder = golden_dir("codec")
    return folder, json.loads((folder / "cases.json").read_text())


@pytest.mark.parametrize("index", range(37))
def test_tokens_match_mt3(golden_dir, index, run_cli):
    folder, cases = codec_cases(golden_dir)
    case = cases[index]
    golden = json.loads((folder / case["golden"]).read_text())
    status, out, err = run_cli(
        "tokens", folder / case["midi"], "--vocab", golden["vocab"],
        "--duration", repr(golden["duration"]), "--json",
    )  # fmt: skip
    assert status == 0, err
    ours = [s["tokens"] for s in json.loads(out)["segments"]]
    theirs = [s["tokens"] for s in golden["segments"]]
    assert [s["start_time"] for s in json.loads(out)["segments"]] == [
        s["start_time"] for s in golden["segments"]
    ]
    if "quirk" not in case:
        assert ours == theirs
    else:
        # MT3's stale tie section after the last event (README behaviour 2): segments 2-5
        # re-declare notes that ended at 2.5 s. We emit the correct state: just the tie.
        assert case["golden"] == "synth_tail__dur12.0.mt3.json"
        assert ours[:2] == theirs[:2]
        assert ours[2:] == [[1134, 1]] * 4
        assert theirs[2:] == [[1135, 1064, 1068, 1168, 1040, 1134, 1]] * 4


@pytest.mark.parametrize("index", range(37))
def test_decoding_matches_mt3(golden_dir, index):
    folder, cases = codec_cases(golden_dir)
    golden = json.loads((folder / cases[index]["golden"]).read_text())
    decoded_name = cases[index]["golden"].replace(".json", ".decoded.json")
    expected = Notes.from_records(json.loads((folder / decoded_name).read_text()))
    result = segment_tokens_to_notes(
        [(s["start_time"], s["tokens"]) for s in golden["segments"]], golden["vocab"]
    )
    assert (result.invalid_events, result.dropped_events) == (
        golden["decode_invalid_events"],
        golden["decode_dropped_events"],
    )
    actual, expected = result.notes.sorted(), expected.sorted()
    assert len(actual) == len(expected)
    np.testing.assert_allclose(actual.start, expected.start, atol=1e-6)
    np.testing.assert_allclose(actual.end, expected.end, atol=1e-6)
    for field in ("pitch", "velocity", "program", "is_drum"):
        np.testing.assert_array_equal(getattr(actual, field), getattr(expected, field))


def test_correct_tail_tokens_decode_to_mt3_notes_without_invalid_events(golden_dir):
    folder = golden_dir("codec")
    midi = folder / "inputs" / "synth_tail__dur12.0.mid"
    from mt3.notes import read_midi

    segments = notes_to_segment_tokens(
        read_midi(midi).notes, "mt3", num_samples=12 * 16000, segment_frames=256
    )
    result = segment_tokens_to_notes([(s.start_time, s.tokens) for s in segments], "mt3")
    expected = Notes.from_records(
        json.loads((folder / "synth_tail__dur12.0.mt3.decoded.json").read_text())
    )
    assert result.invalid_events == 0
    assert_same_notes(result.notes, expected)


def test_tie_section_after_a_segment_is_the_next_segments_tie_section():
    """Following a segment's ids gives exactly the tie section MT3's encoder writes at the start
    of the next segment (the prefix that segment context forces), on a multi-instrument piece
    with drums, held notes and notes ending at segment boundaries."""
    from mt3.data.synth import generate_piece
    from mt3.events import tie_section_after
    from mt3.vocab import vocabulary

    vocab = vocabulary("mt3")
    notes = generate_piece("band", 3, 12.0)
    segments = notes_to_segment_tokens(notes, "mt3", num_samples=13 * 16000, segment_frames=256)
    checked = 0
    for current, following in zip(segments, segments[1:]):
        expected = following.tokens[: following.tokens.index(vocab.tie_id) + 1]
        assert tie_section_after(current.tokens, "mt3") == expected
        checked += len(expected) > 1
    assert checked >= 3  # several segments open with sounding notes

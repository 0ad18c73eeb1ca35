"""Notes to per-segment target tokens, and tokens back to notes (MT3's codec, docs/mt3.md
§2.5–§2.8).

Encoding follows MT3's training pipeline token for token:

1. Events: an offset for every non-drum note, then an onset for every note, each group ordered by
   (is_drum, program, pitch); the list is stable-sorted by the *real* event time, and only then is
   each time quantised to 10 ms steps with round-half-to-even. Drums have no offset event.
2. A segment of frames ``[a, b)`` holds the events whose step lies in ``[a*100//125, b*100//125)``;
   the last segment of a recording also holds every later event.
3. With ties (``mt3``), the segment starts with a tie section: ``program q, pitch n`` for every
   non-drum note active just before the segment's first step, ordered by (program, pitch), then
   ``tie``. "Active" follows MT3's encoding state, where an offset deactivates its (pitch, program)
   even if another note of the same pitch and program is still sounding.
4. Each event emits ``program, velocity, pitch`` (onset: velocity bin; offset: velocity 0) or, for
   drums, ``velocity, drum``. A shift token giving the steps since the segment's first step comes
   before the first event of each new step (values above 1000 are split); trailing shifts vanish.
5. Program tokens are mapped to the granularity (flat: dropped; midi_class: 8*(p//8)); a program or
   velocity token equal to the previous one of its type in the same segment is dropped (the tie
   section counts); ids are codec index + 3 and EOS (1) ends the segment.

One deliberate difference from MT3: MT3 computes the tie section of a segment that starts after the
last event from a stale state (docs/goldens.md, codec behaviour 2) and re-declares notes that have
already ended. We compute the state at the segment's start, which gives just ``tie`` there.

Decoding follows MT3's ``decode_events`` / ``decode_note_event`` / stitching rules (docs/mt3.md
§2.8), counting invalid and dropped events the same way. Times are kept as integer 10 ms steps so
that segment boundaries compare exactly; MT3's float64 start-time rounding, which lands 10 ms low
for a few segment indices (k = 15, 30, ... for 256-frame segments), is not reproduced.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence

import numpy as np

from mt3.audio import FRAMES_PER_SECOND, num_frames
from mt3.errors import Mt3Error
from mt3.notes import Notes
from mt3.vocab import (
    EOS_ID,
    EVENT_TYPES,
    MAX_SHIFT_STEPS,
    STEPS_PER_SECOND,
    VocabConfig,
    Vocabulary,
    map_program,
    velocity_to_bin,
    vocabulary,
)

TARGET_LENGTH = 1024  # decoder length, EOS included
MIN_NOTE_STEPS = 1  # MT3's MIN_NOTE_DURATION of 10 ms
DEFAULT_VELOCITY = 100  # decoder velocity before any velocity token


class EncodingError(Mt3Error, ValueError):
    """Notes that MT3's tokenizer rejects, or a segment longer than the decoder allows."""


def frame_to_step(frame):
    """First 10 ms step whose events belong to a frame: floor(frame * 100 / 125), exactly."""
    return (np.asarray(frame) * STEPS_PER_SECOND) // int(FRAMES_PER_SECOND)


def start_time_to_step(start_time: float) -> int:
    """A segment start time rounded down to 10 ms, as an integer step (robust to float noise)."""
    return math.floor(start_time * STEPS_PER_SECOND + 1e-6)


@dataclasses.dataclass(frozen=True)
class SegmentTokens:
    """Target ids of one segment: frames [start_frame, end_frame), ids ending with EOS."""

    start_frame: int
    end_frame: int
    tokens: list[int]

    @property
    def start_time(self) -> float:
        return self.start_frame / FRAMES_PER_SECOND


class TokenEncoder:
    """Precomputes a recording's events once; then builds targets for any run of frames.

    Args:
      notes: the notes (sustain already applied), in file order.
      vocab: vocabulary config or name.
      total_frames: frames of the recording's audio (``audio.num_frames(num_samples)``); the run
        that ends there also receives every later event, as in MT3.
    """

    def __init__(self, notes: Notes, vocab: VocabConfig | str, total_frames: int):
        self.vocab: Vocabulary = vocabulary(vocab)
        self.total_frames = int(total_frames)
        _check_notes(notes)
        config = self.vocab.config
        by_key = np.lexsort((notes.pitch, notes.program, notes.is_drum))  # stable
        offsets = by_key[~notes.is_drum[by_key]]
        note_index = np.concatenate([offsets, by_key])
        is_onset = np.concatenate([np.zeros(len(offsets), bool), np.ones(len(by_key), bool)])
        times = np.concatenate([notes.end[offsets], notes.start[by_key]])
        order = np.argsort(times, kind="stable")
        note_index, is_onset, times = note_index[order], is_onset[order], times[order]
        self._steps = np.rint(times * STEPS_PER_SECOND).astype(np.int64)

        pitch = notes.pitch[note_index].astype(np.int64)
        program = notes.program[note_index].astype(np.int64)
        is_drum = notes.is_drum[note_index]
        velocity_bin = np.where(
            is_onset, velocity_to_bin(notes.velocity[note_index], config.num_velocity_bins), 0
        )
        first = self.vocab.first_id
        self._program = program
        self._pitch = pitch
        self._is_onset = is_onset
        self._is_drum = is_drum
        self._program_ids = (
            first["program"] + map_program(program, config.program_granularity)
        ).tolist()
        self._velocity_ids = (first["velocity"] + velocity_bin).tolist()
        self._pitch_ids = np.where(is_drum, first["drum"] + pitch, first["pitch"] + pitch).tolist()
        self._drum_list = is_drum.tolist()
        self._step_list = self._steps.tolist()
        self._keep_programs = config.program_granularity != "flat"

        # For tie sections: each non-drum onset, its (program, pitch) key, and the index of the
        # next event with the same key (its offset, or a re-strike).
        melodic = np.flatnonzero(~is_drum)
        keys = program[melodic] * 128 + pitch[melodic]
        by_key_then_time = np.lexsort((melodic, keys))
        next_index = np.full(len(melodic), len(self._steps), dtype=np.int64)
        same = keys[by_key_then_time][1:] == keys[by_key_then_time][:-1]
        next_index[by_key_then_time[:-1][same]] = melodic[by_key_then_time[1:][same]]
        onsets = is_onset[melodic]
        self._onset_index = melodic[onsets]
        self._onset_key = keys[onsets]
        self._onset_until = next_index[onsets]

    def tie_state(self, step: int) -> list[tuple[int, int]]:
        """(program, pitch) of the non-drum notes MT3's state holds active before ``step``.

        An onset's (pitch, program) stays active until the next event of the same key, so a note
        is active at ``step`` when its onset comes before the step's first event and the next
        event of its key does not.
        """
        stop = int(np.searchsorted(self._steps, step, side="left"))
        count = int(np.searchsorted(self._onset_index, stop, side="left"))
        active = self._onset_key[:count][self._onset_until[:count] >= stop]
        return [(int(k) // 128, int(k) % 128) for k in np.sort(active)]

    def tokens(self, start_frame: int, end_frame: int) -> list[int]:
        """Target ids (EOS included) for frames [start_frame, end_frame)."""
        vocab = self.vocab
        first_step = int(frame_to_step(start_frame))
        begin = int(np.searchsorted(self._steps, first_step, side="left"))
        if end_frame >= self.total_frames:
            stop = len(self._step_list)
        else:
            stop = int(np.searchsorted(self._steps, frame_to_step(end_frame), side="left"))

        out: list[int] = []
        last_program = last_velocity = None
        if vocab.config.include_ties:
            for program, pitch in self.tie_state(first_step):
                if self._keep_programs:
                    program_id = vocab.first_id["program"] + map_program(
                        program, vocab.config.program_granularity
                    )
                    if program_id != last_program:
                        out.append(program_id)
                        last_program = program_id
                out.append(vocab.first_id["pitch"] + pitch)
            out.append(vocab.tie_id)

        shift_base = vocab.first_id["shift"]
        previous_step = first_step
        steps, drums = self._step_list, self._drum_list
        program_ids, velocity_ids, pitch_ids = (
            self._program_ids,
            self._velocity_ids,
            self._pitch_ids,
        )
        keep_programs = self._keep_programs
        for event in range(begin, stop):
            step = steps[event]
            if step != previous_step:
                shift = step - first_step
                while shift > 0:
                    chunk = min(shift, MAX_SHIFT_STEPS)
                    out.append(shift_base + chunk)
                    shift -= chunk
                previous_step = step
            if keep_programs and not drums[event]:
                program_id = program_ids[event]
                if program_id != last_program:
                    out.append(program_id)
                    last_program = program_id
            velocity_id = velocity_ids[event]
            if velocity_id != last_velocity:
                out.append(velocity_id)
                last_velocity = velocity_id
            out.append(pitch_ids[event])
        out.append(EOS_ID)
        return out


def _check_notes(notes: Notes) -> None:
    """MT3's ``validate_note_sequence`` plus range checks; the error names the first bad note."""
    bad = np.flatnonzero(
        (notes.start >= notes.end)
        | (notes.velocity <= 0)
        | (notes.velocity > 127)
        | (notes.start < 0)
        | ~np.isfinite(notes.end)
        | (notes.pitch < 0)
        | (notes.pitch > 127)
        | (notes.program < 0)
        | (notes.program > 127)
    )
    if bad.size:
        i = int(bad[0])
        raise EncodingError(
            f"note {i} (pitch {notes.pitch[i]}, program {notes.program[i]}, "
            f"{notes.start[i]:.6f}-{notes.end[i]:.6f} s, velocity {notes.velocity[i]}) cannot be "
            "encoded: notes need 0 <= start < end, velocity 1..127, pitch and program 0..127"
        )


def notes_to_segment_tokens(
    notes: Notes,
    vocab: VocabConfig | str,
    *,
    num_samples: int,
    segment_frames: int,
    max_length: int | None = TARGET_LENGTH,
) -> list[SegmentTokens]:
    """Targets for consecutive segments of a recording, as MT3's training pipeline builds them.

    Args:
      notes: notes with sustain applied.
      vocab: 'mt3', 'ismir2021' or a VocabConfig.
      num_samples: length of the (16 kHz) audio the notes belong to.
      segment_frames: 256 for mt3, 512 for ismir2021.
      max_length: raise EncodingError for a segment with more ids (EOS included), as MT3's
        ``handle_too_long`` assertion does; None disables the check.
    """
    total = num_frames(num_samples)
    encoder = TokenEncoder(notes, vocab, total)
    segments = []
    for start in range(0, total, segment_frames):
        end = min(start + segment_frames, total)
        tokens = encoder.tokens(start, end)
        if max_length is not None and len(tokens) > max_length:
            raise EncodingError(
                f"segment at {start / FRAMES_PER_SECOND:.3f} s has {len(tokens)} tokens, more than "
                f"the decoder's {max_length}; MT3's pipeline rejects such targets"
            )
        segments.append(SegmentTokens(start, end, tokens))
    return segments


# ----------------------------------------------------------------------------------------------
# Decoding


@dataclasses.dataclass(frozen=True)
class DecodeResult:
    notes: Notes
    invalid_events: int
    dropped_events: int


class _NoteDecoder:
    """MT3's note decoding state, carried across the segments of one recording (steps, not s)."""

    def __init__(self, vocab: Vocabulary):
        self.vocab = vocab
        self.current_step = 0
        self.velocity = DEFAULT_VELOCITY
        self.program = 0
        self.active: dict[tuple[int, int], tuple[int, int]] = {}  # (pitch, program) -> (onset, vel)
        self.tied: set[tuple[int, int]] = set()
        self.in_tie_section = False
        self.notes: list[tuple[int, int, int, int, int, bool]] = []

    def add(self, start, end, pitch, velocity, program, is_drum=False):
        self.notes.append(
            (start, max(end, start + MIN_NOTE_STEPS), pitch, velocity, program, is_drum)
        )

    def event(self, step: int, event_type: str, value: int) -> bool:
        """Apply one non-shift event at ``step``; False if MT3 would count it invalid."""
        if step < self.current_step:
            return False
        self.current_step = step
        if event_type == "pitch":
            key = (value, self.program)
            if self.in_tie_section:
                if key not in self.active or key in self.tied:
                    return False
                self.tied.add(key)
            elif self.velocity == 0:
                if key not in self.active:
                    return False
                onset, velocity = self.active.pop(key)
                self.add(onset, step, value, velocity, self.program)
            else:
                if key in self.active:
                    onset, velocity = self.active.pop(key)
                    self.add(onset, step, value, velocity, self.program)
                self.active[key] = (step, self.velocity)
        elif event_type == "drum":
            if self.velocity == 0:
                return False
            self.add(step, step + MIN_NOTE_STEPS, value, self.velocity, 0, True)
        elif event_type == "velocity":
            self.velocity = self.vocab.bin_to_velocity(value)
        elif event_type == "program":
            self.program = value
        elif event_type == "tie":
            if not self.in_tie_section:
                return False
            for key in list(self.active):
                if key not in self.tied:
                    onset, velocity = self.active.pop(key)
                    self.add(onset, self.current_step, key[0], velocity, key[1])
            self.in_tie_section = False
        else:  # shift handled by the caller
            return False
        return True

    def flush(self) -> Notes:
        for onset, _ in self.active.values():
            self.current_step = max(self.current_step, onset + MIN_NOTE_STEPS)
        for (pitch, program), (onset, velocity) in list(self.active.items()):
            self.add(onset, self.current_step, pitch, velocity, program)
        self.active.clear()
        if not self.notes:
            return Notes.empty()
        start, end, pitch, velocity, program, is_drum = (np.array(c) for c in zip(*self.notes))
        return Notes(
            start / STEPS_PER_SECOND, end / STEPS_PER_SECOND, pitch, velocity, program, is_drum
        ).sorted()


def segment_tokens_to_notes(
    segments: Iterable[tuple[float, Sequence[int]]], vocab: VocabConfig | str
) -> DecodeResult:
    """Decode and stitch per-segment ids into notes (docs/mt3.md §2.8).

    Args:
      segments: (start_time in seconds, model ids) per segment, in any order. The start time is
        rounded down to 10 ms; ids after the first EOS are ignored.
      vocab: the vocabulary the ids come from. With ties (``mt3``) each segment opens a tie section.
    """
    vocab = vocabulary(vocab)
    decoder = _NoteDecoder(vocab)
    ordered = sorted(
        ((start_time_to_step(t), list(ids)) for t, ids in segments), key=lambda s: s[0]
    )
    invalid = dropped = 0
    types = EVENT_TYPES
    for index, (start_step, ids) in enumerate(ordered):
        if EOS_ID in ids:
            ids = ids[: ids.index(EOS_ID)]
        max_step = ordered[index + 1][0] if index + 1 < len(ordered) else None
        if vocab.config.include_ties:
            decoder.tied = set()
            decoder.in_tie_section = True
        type_index = vocab.event_types_of(np.asarray(ids, dtype=np.int64)).tolist()
        steps = 0
        step = start_step
        for position, (token, kind) in enumerate(zip(ids, type_index)):
            if kind < 0:
                invalid += 1
                continue
            event_type = types[kind]
            value = token - vocab.first_id[event_type]
            if event_type == "shift":
                steps += value
                step = start_step + steps
                if max_step is not None and step > max_step:
                    dropped += len(ids) - position
                    break
            else:
                steps = 0
                if not decoder.event(step, event_type, value):
                    invalid += 1
    return DecodeResult(decoder.flush(), invalid, dropped)


def tie_section_after(ids: Sequence[int], vocab: VocabConfig | str) -> list[int]:
    """The tie section that carries a segment's still-sounding notes into the next segment.

    Follows ``ids`` (one segment's model ids, its own tie section first) as MT3's
    encoder does: the tie section's notes and every onset without a later offset are sounding at
    the end. Returns the ids that open the next segment in MT3's training targets (§2.6):
    ``program q, pitch n ...`` per program in (program, pitch) order, each program once, then
    ``tie``. Drums never sound on. (Stitching drops events past the next segment's start; the
    encoder does not, so neither does this.)
    """
    vocab = vocabulary(vocab)
    if EOS_ID in ids:
        ids = ids[: list(ids).index(EOS_ID)]
    kinds = vocab.event_types_of(np.asarray(ids, dtype=np.int64)).tolist()
    sounding: set[tuple[int, int]] = set()
    program, velocity, in_ties = None, 1, vocab.config.include_ties
    for token, kind in zip(ids, kinds):
        if kind < 0:
            continue
        event_type = EVENT_TYPES[kind]
        value = token - vocab.first_id[event_type]
        if event_type == "tie":
            in_ties = False
        elif event_type == "program":
            program = value
        elif event_type == "velocity":
            velocity = value
        elif event_type == "pitch" and program is not None:
            if in_ties or velocity > 0:
                sounding.add((program, value))
            else:
                sounding.discard((program, value))
    section, last = [], None
    for program, pitch in sorted(sounding):
        if program != last:
            section.append(vocab.event_id("program", program))
            last = program
        section.append(vocab.event_id("pitch", pitch))
    return section + [vocab.tie_id]

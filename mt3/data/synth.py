"""Generated multi-instrument music, rendered with a General MIDI soundfont: the embedded data that
stands in for the real datasets on a fresh machine (docs/architecture.md, datasets).

Every piece is deterministic from (kind, seed): a tempo, a key, a chord progression, and parts that
follow it. Kinds, so that a mixture of them is a real mixture:

- ``piano``: one piano program; a right-hand melody and left-hand chords or broken chords;
- ``ensemble``: two to four of strings, reeds, pipes and brass; a melody, counter-voices and a
  bass line, each in its instrument's range;
- ``band``: drums (kick, snare, hi-hat patterns with fills), a bass line, chords on guitar, piano or
  organ, and a lead;
- ``chorales``: the 371 four-part Bach chorales of music21's corpus (the only corpus music used for
  training; other corpus works stay out for evaluation), each voice on a GM program drawn from
  strings, reeds, brass, choir or organ, at a tempo of 60-100 quarter notes per minute.

Velocities vary (60-115) and notes carry their exact times, so rendered audio and labels agree to
the sample.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mt3.notes import Notes

KINDS = ("piano", "ensemble", "band", "chorales")
CHORALE_COUNT = 371  # music21's Riemenschneider numbering of the Bach chorales
CHORALE_PROGRAMS = (  # per voice, soprano to bass: choices that sound in range
    (40, 52, 56, 68, 71, 73, 19),
    (41, 52, 60, 68, 71, 19, 65),
    (42, 52, 57, 70, 71, 19, 66),
    (42, 43, 58, 70, 32, 19, 67),
)
MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
PROGRESSIONS = ([0, 5, 3, 4], [0, 3, 4, 0], [0, 4, 5, 3], [1, 4, 0, 0], [0, 5, 1, 4])
ENSEMBLE_PROGRAMS = {  # program: (lowest, highest) pitch
    40: (55, 96), 41: (48, 84), 42: (36, 72), 43: (28, 60), 56: (54, 82), 57: (40, 72),
    60: (41, 77), 64: (56, 87), 65: (49, 80), 68: (58, 91), 70: (34, 72), 71: (50, 91),
    73: (60, 96), 74: (60, 96),
}  # fmt: skip
LEAD_PROGRAMS = (56, 64, 65, 66, 73, 80, 81, 29, 30, 16, 17)
CHORD_PROGRAMS = (0, 1, 4, 5, 16, 24, 25, 26, 27, 48, 88)
BASS_PROGRAMS = (32, 33, 34, 35, 36, 38, 39)
KICK, SNARE, CLOSED_HAT, OPEN_HAT, CRASH = 36, 38, 42, 46, 49


@dataclasses.dataclass
class _Writer:
    rng: np.random.Generator
    rows: list = dataclasses.field(default_factory=list)

    def note(self, start, duration, pitch, program, drum=False, velocity=None):
        velocity = int(velocity if velocity is not None else self.rng.integers(60, 116))
        self.rows.append((start, start + max(duration, 0.03), int(pitch), velocity, program, drum))

    def notes(self) -> Notes:
        if not self.rows:
            return Notes.empty()
        columns = list(zip(*self.rows))
        return Notes(*(np.array(c) for c in columns)).sorted()


def _fit(pitch: int, low: int, high: int) -> int:
    while pitch < low:
        pitch += 12
    while pitch > high:
        pitch -= 12
    return pitch


def _chord(key: int, degree: int) -> list[int]:
    """Pitch classes (as semitones above C) of the diatonic triad on a scale degree."""
    return [key + MAJOR[(degree + step) % 7] + 12 * ((degree + step) // 7) for step in (0, 2, 4)]


def generate_piece(kind: str, seed: int, seconds: float) -> Notes:
    """The notes of one generated piece of about ``seconds`` seconds."""
    if kind not in KINDS:
        raise ValueError(f"unknown synthetic kind {kind!r}; choose one of {', '.join(KINDS)}")
    rng = np.random.default_rng([KINDS.index(kind), seed])
    out = _Writer(rng)
    if kind == "chorales":
        return _chorale(out, rng, seed % CHORALE_COUNT, seconds)
    beat = 60.0 / rng.uniform(70, 150)
    key = int(rng.integers(0, 12))
    progression = PROGRESSIONS[rng.integers(len(PROGRESSIONS))]
    bars = max(1, int(seconds / (4 * beat)))
    if kind == "piano":
        program = int(rng.integers(0, 8))
        _melody(out, rng, key, progression, bars, beat, program, (64, 88))
        _accompaniment(out, rng, key, progression, bars, beat, program, (40, 62))
    elif kind == "ensemble":
        count = int(rng.integers(2, 5))
        programs = rng.choice(list(ENSEMBLE_PROGRAMS), size=count, replace=False)
        ranges = sorted((ENSEMBLE_PROGRAMS[int(p)], int(p)) for p in programs)
        for index, (span, program) in enumerate(reversed(ranges)):
            if index == 0:
                _melody(out, rng, key, progression, bars, beat, program, span)
            elif index == count - 1:
                _bass(out, rng, key, progression, bars, beat, program, span)
            else:
                _voice(out, rng, key, progression, bars, beat, program, span, index)
    else:
        _drums(out, rng, bars, beat)
        _bass(out, rng, key, progression, bars, beat, int(rng.choice(BASS_PROGRAMS)), (28, 52))
        chords = int(rng.choice(CHORD_PROGRAMS))
        _accompaniment(out, rng, key, progression, bars, beat, chords, (48, 72))
        lead = int(rng.choice(LEAD_PROGRAMS))
        _melody(out, rng, key, progression, bars, beat, lead, (60, 86))
    return out.notes()


def _bars(progression, bars, beat):
    for bar in range(bars):
        yield bar * 4 * beat, progression[bar % len(progression)]


def _melody(out, rng, key, progression, bars, beat, program, span):
    low, high = span
    for start, degree in _bars(progression, bars, beat):
        chord = _chord(key, degree)
        time = start
        while time < start + 4 * beat - 1e-9:
            length = beat * float(rng.choice([0.5, 0.5, 1.0, 1.0, 1.5, 2.0]))
            length = min(length, start + 4 * beat - time)
            if rng.random() < 0.85:
                base = (
                    chord[rng.integers(3)] if rng.random() < 0.6 else key + MAJOR[rng.integers(7)]
                )
                pitch = _fit(60 + base + 12 * int(rng.integers(0, 2)), low, high)
                out.note(time, length * 0.9, pitch, program)
            time += length


def _accompaniment(out, rng, key, progression, bars, beat, program, span):
    low, high = span
    broken = rng.random() < 0.5
    for start, degree in _bars(progression, bars, beat):
        pitches = [_fit(48 + p, low, high) for p in _chord(key, degree)]
        if broken:
            for step in range(8):
                out.note(start + step * beat / 2, beat / 2 * 0.95, pitches[step % 3], program)
        else:
            for half in range(2):
                for pitch in pitches:
                    out.note(start + half * 2 * beat, 2 * beat * 0.95, pitch, program)


def _bass(out, rng, key, progression, bars, beat, program, span):
    low, high = span
    for start, degree in _bars(progression, bars, beat):
        root = _fit(36 + _chord(key, degree)[0], low, high)
        fifth = _fit(root + 7, low, high)
        pattern = [root, root, fifth, root] if rng.random() < 0.5 else [root, fifth, root, fifth]
        for step, pitch in enumerate(pattern):
            out.note(start + step * beat, beat * 0.9, pitch, program)


def _voice(out, rng, key, progression, bars, beat, program, span, index):
    low, high = span
    for start, degree in _bars(progression, bars, beat):
        chord = _chord(key, degree)
        for half in range(2):
            pitch = _fit(60 + chord[(index + half) % 3], low, high)
            out.note(start + half * 2 * beat, 2 * beat * 0.95, pitch, program)


def _drums(out, rng, bars, beat):
    busy = rng.random() < 0.5
    for bar in range(bars):
        start = bar * 4 * beat
        if bar % 4 == 0:
            out.note(start, 0.1, CRASH, 0, drum=True)
        for step in range(8):
            time = start + step * beat / 2
            out.note(time, 0.05, OPEN_HAT if step == 7 and busy else CLOSED_HAT, 0, drum=True,
                     velocity=int(rng.integers(50, 90)))  # fmt: skip
            if step in (0, 4) or (busy and step == 5):
                out.note(time, 0.1, KICK, 0, drum=True)
            if step in (2, 6):
                out.note(time, 0.1, SNARE, 0, drum=True)
        if bar % 4 == 3 and busy:  # a fill
            for step in range(4):
                out.note(start + 3 * beat + step * beat / 4, 0.05, SNARE, 0, drum=True)


def _chorale(out, rng, index: int, seconds: float) -> Notes:
    """Chorale ``index`` (Riemenschneider order), cut to ``seconds``."""
    from music21 import corpus

    names = list(corpus.chorales.Iterator(numberingSystem="riemenschneider", returnType="filename"))
    score = corpus.parse(names[index])
    seconds_per_quarter = 60.0 / rng.uniform(60, 100)
    for voice, part in enumerate(score.parts[:4]):
        program = int(rng.choice(CHORALE_PROGRAMS[voice]))
        for element in part.stripTies().flatten().notes:
            start = float(element.offset) * seconds_per_quarter
            length = float(element.quarterLength) * seconds_per_quarter
            if start >= seconds or length <= 0:
                continue
            for pitch in element.pitches:
                out.note(start, min(length, seconds - start) * 0.95, pitch.midi, program,
                         velocity=int(rng.integers(70, 101)))  # fmt: skip
    return out.notes()

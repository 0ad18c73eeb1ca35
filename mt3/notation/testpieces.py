"""Generated pieces with a known tempo, metre, key and grid, to test and measure the notation.

A piece is a chord progression in a key, played by an ensemble (``piano``: melody over bass and
chords; ``quartet``: two violins, viola and cello; ``band``: saxophone, guitar, bass and drums)
with beat-level rhythm patterns, accented downbeats and small timing jitter. Variants: ``swing``
(off-beat eighths late, at two thirds of the beat), ``rubato`` (the tempo drifts by up to
+-``rubato`` in a slow wave) and a tempo change at a bar. The truth of every note is its position
in quarter notes from the first downbeat, as played (a swung
eighth is the last triplet eighth of its beat).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mt3.notation.grid import Metre
from mt3.notation.score import Key
from mt3.notes import Notes

ENSEMBLES = ("piano", "quartet", "band")
FOUR_FOUR, C_MAJOR = Metre(4), Key(0, "major")
_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 11)  # harmonic minor: the raised leading tone
_PROGRESSION = (0, 3, 4, 0, 5, 3, 4, 4)  # scale degrees of the bar chords: I IV V I vi IV V V
# Beat rhythms (onsets within a beat, in beats) for simple and compound metres.
_SIMPLE = ((0,), (0, 0.5), (0, 0.5), (0, 0.25, 0.5, 0.75), (0, 0.75), (0, 1 / 3, 2 / 3))
_COMPOUND = ((0,), (0, 1 / 3, 2 / 3), (0, 2 / 3), (0, 1 / 3, 2 / 3), (0, 1 / 6, 1 / 3, 2 / 3))


@dataclasses.dataclass(frozen=True)
class Piece:
    """Notes and their truth: ``quarters`` [n] onset of each note in quarter notes."""

    notes: Notes
    quarters: np.ndarray
    bpm: float  # beats (the metre's beat unit) per minute at the start
    metre: Metre
    key: Key
    tempo_change: tuple[int, float] | None  # (bar, new bpm)
    programs: dict[int, str]  # program -> role, for the part names


def generate_piece(
    seed: int, *, ensemble: str = "piano", bpm: float = 100.0, metre: Metre = FOUR_FOUR,
    key: Key = C_MAJOR, bars: int = 16, swing: bool = False, rubato: float = 0.0,
    tempo_change: tuple[int, float] | None = None, jitter_seconds: float = 0.008,
) -> Piece:  # fmt: skip
    rng = np.random.default_rng(seed)
    scale = _MAJOR if key.mode == "major" else _MINOR
    tonic = (key.fifths * 7 + (0 if key.mode == "major" else 9)) % 12
    beats_per_bar = metre.beats_per_bar
    rhythms = _COMPOUND if metre.compound else _SIMPLE
    rows = []  # (beat position, length in beats, pitch, velocity, program, is_drum)

    def degree_pitch(degree, low):
        octave, step = divmod(degree, 7)
        pitch = tonic + scale[step] + 12 * octave
        while pitch < low:
            pitch += 12
        return pitch

    melody_program, parts = {"piano": (0, {0: "piano"}),
                             "quartet": (40, {40: "violins", 41: "viola", 42: "cello"}),
                             "band": (65, {65: "sax", 25: "guitar", 33: "bass", -1: "drums"})}[
        ensemble]  # fmt: skip
    degree = 7
    for bar in range(bars):
        root = _PROGRESSION[bar % len(_PROGRESSION)]
        chord = [root, root + 2, root + 4]
        bar_start = bar * beats_per_bar
        for beat in range(beats_per_bar):
            onsets = rhythms[rng.integers(len(rhythms))] if bar < bars - 1 or beat == 0 else (0,)
            if bar == bars - 1 and beat == 0:
                onsets = (0,)
            for i, frac in enumerate(onsets):
                nxt = onsets[i + 1] if i + 1 < len(onsets) else 1.0
                length = (beats_per_bar - beat) if bar == bars - 1 else nxt - frac
                step = rng.choice([-2, -1, -1, 1, 1, 2]) if frac else rng.choice(chord) - degree % 7
                degree = int(np.clip(degree + step, 5, 14))
                velocity = 100 if frac == 0 and beat == 0 else 80 if frac == 0 else 64
                rows.append((bar_start + beat + frac, length, degree_pitch(degree, 64), velocity,
                             melody_program, False))  # fmt: skip
        # Accompaniment: bass on the downbeat (and the middle of 4/4 bars), chords on beats.
        bass_program = {"piano": 0, "quartet": 42, "band": 33}[ensemble]
        halves = (0, 2) if beats_per_bar == 4 else (0,)
        for b in halves:
            span = 2 if beats_per_bar == 4 else beats_per_bar
            rows.append((bar_start + b, span, degree_pitch(root, 36), 96 if b == 0 else 80,
                         bass_program, False))  # fmt: skip
        chord_program = {"piano": 0, "quartet": 41, "band": 25}[ensemble]
        for beat in range(beats_per_bar):
            if ensemble == "piano" and beat == 0:
                continue
            for d in chord:
                rows.append((bar_start + beat, 1, degree_pitch(d, 53), 70 if beat else 90,
                             chord_program, False))  # fmt: skip
        if ensemble == "quartet":  # second violin: a held third above the chord
            rows.append((bar_start, beats_per_bar, degree_pitch(root + 2, 62), 80, 40, False))
        if ensemble == "band":
            hat_step = 1 / 3 if metre.compound else 0.5
            for k in range(int(round(beats_per_bar / hat_step))):
                rows.append((bar_start + k * hat_step, hat_step, 42, 70, 0, True))
            for beat in range(beats_per_bar):
                if beat == 0 or (beats_per_bar == 4 and beat == 2):
                    rows.append((bar_start + beat, 0.25, 36, 110, 0, True))
                else:
                    rows.append((bar_start + beat, 0.25, 38, 100, 0, True))
            if bar % 4 == 0:
                rows.append((bar_start, 1, 49, 110, 0, True))

    position = np.array([r[0] for r in rows], float)
    length = np.array([r[1] for r in rows], float)
    if swing and not metre.compound:
        position = _swing(position)
    seconds_of = _tempo_curve(bars * beats_per_bar + 2, bpm, beats_per_bar, rubato, tempo_change)
    start = seconds_of(position) + rng.normal(0, jitter_seconds, len(rows))
    end = seconds_of(position + length * 0.92)
    start = np.maximum(start, 0.0) + 0.5
    end = np.maximum(end + 0.5, start + 0.03)
    notes = Notes(
        start=start, end=end, pitch=[r[2] for r in rows],
        velocity=np.clip(np.array([r[3] for r in rows]) + rng.integers(-6, 7, len(rows)), 1, 127),
        program=[max(r[4], 0) for r in rows], is_drum=[r[5] for r in rows],
    )  # fmt: skip
    order = np.argsort(start, kind="stable")
    quarters = position * metre.beat_quarters  # swung eighths are written as triplets
    parts = {k: v for k, v in parts.items() if k >= 0}
    return Piece(notes.select(order), quarters[order], bpm, metre, key, tempo_change, parts)


def _swing(position: np.ndarray) -> np.ndarray:
    """Off-beat eighths moved to the last triplet of their beat."""
    frac = position - np.floor(position)
    return np.where(np.isclose(frac, 0.5), np.floor(position) + 2 / 3, position)


def _tempo_curve(beats: int, bpm: float, beats_per_bar: int, rubato: float, change):
    """Beat position -> seconds for a tempo that may drift (rubato) or switch at a bar."""
    fine = np.linspace(0, beats + 4, (beats + 4) * 48 + 1)
    tempo = np.full(len(fine), float(bpm))
    if rubato:
        tempo *= 1 + rubato * np.sin(2 * np.pi * fine / (4 * beats_per_bar))
    if change:
        tempo[fine >= change[0] * beats_per_bar] = change[1]
    seconds = np.concatenate([[0], np.cumsum(np.diff(fine) * 60.0 / tempo[:-1])])
    return lambda b: np.interp(b, fine, seconds)


# ----------------------------------------------------------------------------------------------
# Reading a score back and comparing it with the truth


@dataclasses.dataclass(frozen=True)
class ReadBack:
    """What a MusicXML file says, read with music21, and how it matches a Piece."""

    tempos: list[tuple[float, float]]  # (offset in quarters, quarter notes per minute)
    signature: str
    key: tuple[int, str]  # (fifths, mode)
    part_names: list[str]
    percussion_parts: list[str]
    on_grid: float  # share of the piece's notes at their true position (whole bars of shift)
    on_beat: float  # share within the right beat


def read_back(musicxml: str, piece: Piece) -> ReadBack:
    """Parse ``musicxml`` with music21 and compare its notes with ``piece``'s truth."""
    import music21

    from mt3.notation.score import DRUM_DISPLAY, OTHER_DRUM

    score = music21.converter.parseData(musicxml, format="musicxml")
    marks = score.flatten().getElementsByClass(music21.tempo.MetronomeMark)
    tempos = [(float(m.offset), float(m.getQuarterBPM())) for m in marks]
    signatures = score.flatten().getElementsByClass(music21.meter.TimeSignature)
    signature = signatures.first().ratioString if signatures else ""
    keys = score.flatten().getElementsByClass(music21.key.KeySignature)
    key = keys.first()
    key = (key.sharps, getattr(key, "mode", "")) if key is not None else (0, "")
    names, percussion, onsets = [], [], {}
    for part in score.parts:
        names.append(part.partName)
        flat = part.stripTies().flatten()
        if flat.getElementsByClass(music21.clef.PercussionClef) or flat.getElementsByClass(
            music21.note.Unpitched
        ):  # fmt: skip
            percussion.append(part.partName)
        for element in flat.notes:
            chord = isinstance(element, music21.chord.ChordBase)
            for n in element.notes if chord else [element]:
                if isinstance(n, music21.note.Unpitched):
                    tag = n.displayStep + str(n.displayOctave)
                else:
                    tag = n.pitch.midi
                onsets.setdefault(tag, []).append(float(element.offset))
    onsets = {k: np.sort(v) for k, v in onsets.items()}

    tags = [
        (DRUM_DISPLAY.get(int(p), OTHER_DRUM)[0] if d else int(p))
        for p, d in zip(piece.notes.pitch, piece.notes.is_drum)
    ]
    beat = piece.metre.beat_quarters
    bar = piece.metre.beats_per_bar * beat

    def matches(shift):
        exact = near = 0
        for tag, true in zip(tags, piece.quarters):
            found = onsets.get(tag)
            if found is None or len(found) == 0:
                continue
            target = true + shift
            nearest = found[np.argmin(np.abs(found - target))]
            exact += abs(nearest - target) < 1e-3
            near += np.floor(nearest / beat + 1e-6) == np.floor(target / beat + 1e-6)
        return exact, near

    results = [matches(k * bar) for k in range(-2, 3)]
    exact, near = max(results)
    count = max(len(tags), 1)
    return ReadBack(tempos, signature, key, names, percussion, exact / count, near / count)

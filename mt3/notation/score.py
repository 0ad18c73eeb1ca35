"""Notes + a beat grid -> a music21 score: quantisation, key, spelling, parts, clefs, drums.

Onsets and offsets are mapped to beats through the grid and rounded, beat by beat, to sixteenths
or eighth triplets (whichever fits that beat's notes better; sixteenths in 6/8). Each instrument
(GM program, or the drum kit) becomes a part named after its General MIDI program: the piano
families on a grand staff split at middle C, basses and guitars on octave clefs (written an
octave above their sound, as players read them), other parts on the clef their range needs, drums
on a percussion staff with the usual drum-kit positions and note heads. Within a staff, notes that
start and end together form chords and overlapping lines become voices (at most two; a third
line is shortened or merged into a chord). The key is
the Krumhansl-Kessler profile that best matches the duration-weighted pitch classes, and every
note is spelled on the line of fifths around that key.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np

from mt3.notation.grid import BeatGrid, Metre
from mt3.notes import Notes

MAX_VOICES = 2  # lines per staff; more overlapping notes are shortened or merged
SPLIT_PITCH = 60  # grand staff: middle C and above in the right hand
# Krumhansl-Kessler key profiles (probe-tone ratings), tonic first.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
_STEPS = "FCGDAEB"  # the line of fifths, from F (position -1)
_PC_OF_STEP = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}

# Drum kit on the percussion staff: GM key -> (display step+octave, note head).
DRUM_DISPLAY = {
    35: ("F4", "normal"), 36: ("F4", "normal"),  # kicks
    37: ("C5", "x"), 38: ("C5", "normal"), 39: ("C5", "x"), 40: ("C5", "normal"),  # snares
    41: ("A4", "normal"), 43: ("A4", "normal"),  # floor toms
    45: ("D5", "normal"), 47: ("D5", "normal"),  # mid toms
    48: ("E5", "normal"), 50: ("E5", "normal"),  # high toms
    42: ("G5", "x"), 44: ("D4", "x"), 46: ("G5", "circle-x"),  # hi-hat closed, pedal, open
    49: ("A5", "x"), 57: ("A5", "x"), 52: ("A5", "x"), 55: ("A5", "x"),  # crash, china, splash
    51: ("F5", "x"), 59: ("F5", "x"), 53: ("F5", "diamond"),  # ride, ride bell
}  # fmt: skip
OTHER_DRUM = ("E5", "triangle")  # percussion without a kit position
FEET = (35, 36, 44)  # bass drums and the pedal hi-hat: the lower voice


@dataclasses.dataclass(frozen=True)
class Key:
    """A key: ``fifths`` sharps (negative: flats) and the mode."""

    fifths: int
    mode: str  # "major" | "minor"

    @property
    def name(self) -> str:
        tonic = _spell_pc((self.fifths * 7 + (0 if self.mode == "major" else 9)) % 12, self)
        return f"{tonic} {self.mode}"


def estimate_key(notes: Notes) -> Key:
    """The major or minor key whose profile best correlates with the pitch-class durations."""
    pitched = notes.select(~notes.is_drum)
    if len(pitched) == 0:
        return Key(0, "major")
    histogram = np.zeros(12)
    np.add.at(histogram, pitched.pitch % 12, np.clip(pitched.end - pitched.start, 0.05, 2.0))
    best = (-np.inf, Key(0, "major"))
    for tonic in range(12):
        for mode, profile in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE)):
            r = np.corrcoef(histogram, np.roll(profile, tonic))[0, 1]
            relative_major = tonic if mode == "major" else (tonic + 3) % 12
            fifths = (relative_major * 7) % 12  # position on the circle of fifths
            fifths = fifths - 12 if fifths > 6 else fifths  # at most 6 sharps; F# major has 6
            best = max(best, (r if np.isfinite(r) else -1, Key(fifths, mode)), key=lambda b: b[0])
    return best[1]


def _spell_pc(pc: int, key: Key) -> str:
    """Note name of a pitch class (e.g. 'F#', 'B-') that lies on the line of fifths within
    [fifths - 3, fifths + 8]: the key's scale, its raised leading tone, then the nearest."""
    for position in range(key.fifths - 3, key.fifths + 9):
        step = _STEPS[(position + 1) % 7]
        alter = (position + 1) // 7
        if (_PC_OF_STEP[step] + alter) % 12 == pc:
            return step + ("#" * alter if alter > 0 else "-" * -alter)
    raise AssertionError(pc)


def spell(pitch: int, key: Key):
    """A music21 Pitch for a MIDI pitch, spelled in ``key``."""
    import music21

    name = _spell_pc(int(pitch) % 12, key)
    p = music21.pitch.Pitch(name)
    p.octave = 4
    p.octave += (int(pitch) - int(p.midi)) // 12
    return p


# ----------------------------------------------------------------------------------------------
# Quantisation


def beat_divisions(onset_beats: np.ndarray, metre: Metre) -> dict[int, int]:
    """Grid steps per beat, for each beat holding onsets: the subdivision (sixteenths or eighth
    triplets) that puts those onsets nearest to grid points; ties go to sixteenths."""
    choices = metre.subdivisions
    index = np.floor(onset_beats + 0.5 / max(choices)).astype(int)
    divisions = {}
    for b in np.unique(index):
        inside = onset_beats[index == b] - b
        errors = [np.sum(np.abs(inside * d - np.round(inside * d)) / d) for d in choices]
        divisions[int(b)] = choices[int(np.argmin(np.array(errors) - 1e-6))]
    return divisions


def quantise(beats: np.ndarray, metre: Metre, divisions: dict[int, int]) -> np.ndarray:
    """Positions in beats rounded to their beat's grid, as exact quarter-note offsets
    (an object array of Fractions)."""
    step = max(metre.subdivisions)
    quarter = Fraction(metre.beat_quarters).limit_denominator(2)
    out = []
    for x in np.asarray(beats, float):
        d = divisions.get(int(np.floor(x + 0.5 / step)), metre.subdivisions[0])
        out.append(Fraction(int(round(x * d)), d) * quarter)
    return np.array(out, dtype=object)


# ----------------------------------------------------------------------------------------------
# Parts


@dataclasses.dataclass
class _Staff:
    clef: str  # music21 clef class name
    events: list  # (onset ql, end ql, [pitch, ...]) as Fractions
    percussion: bool = False
    voices: list | None = None  # events already in voices (drums: hands, feet)


def part_name(program: int, is_drum: bool) -> str:
    import pretty_midi

    return "Drums" if is_drum else pretty_midi.program_to_instrument_name(int(program))


def _clef_for(program: int, pitches: np.ndarray) -> str:
    if 32 <= program <= 39 or program == 43:  # basses, contrabass
        return "Bass8vbClef"
    if 24 <= program <= 31:  # guitars
        return "Treble8vbClef"
    if program == 41:
        return "AltoClef"
    if program in (42, 58):  # cello, tuba
        return "BassClef"
    return "TrebleClef" if np.median(pitches) >= 55 else "BassClef"


_FAMILY_ORDER = [(64, 80), (56, 64), (80, 104), (0, 24), (24, 32), (104, 120), (40, 56), (32, 40)]


def _order(program: int, is_drum: bool) -> tuple:
    if is_drum:
        return (len(_FAMILY_ORDER) + 1, program)
    for rank, (lo, hi) in enumerate(_FAMILY_ORDER):
        if lo <= program < hi:
            return (rank, program)
    return (len(_FAMILY_ORDER), program)


def _legato(onsets, ends, raw_ends, metre):
    """Offsets near a later onset of the staff move onto it (played and transcribed notes end a
    little early, sometimes late): the first onset from a tenth of a beat before the offset to
    a third of a beat after it, else the last one up to a third of a beat before it. Every note
    lasts at least one grid step."""
    beat_ql = Fraction(metre.beat_quarters).limit_denominator(2)
    beat = float(beat_ql)
    later = np.array(sorted({float(o) for o in onsets}))
    exact = {float(o): o for o in onsets}
    step = beat_ql / max(metre.subdivisions)
    out = []
    for onset, end, raw in zip(onsets, ends, raw_ends):
        after = later[
            (later > float(onset)) & (later >= raw - 0.1 * beat) & (later <= raw + beat / 3)
        ]
        before = later[(later > float(onset)) & (later >= raw - beat / 3) & (later < raw)]
        if len(after):
            end = exact[after[0]]
        elif len(before):
            end = exact[before[-1]]
        out.append(max(end, onset + step))
    return onsets, np.array(out, dtype=object)


def _drum_staff(onsets, pitches, metre) -> _Staff:
    """Drums in two voices, hands (stems up) over feet (bass drum, pedal hi-hat; stems down);
    a hit lasts until the next hit of its voice, at most a beat."""
    beat_ql = Fraction(metre.beat_quarters).limit_denominator(2)
    feet = np.isin(pitches, FEET)
    voices = []
    for mask in (~feet, feet):
        hits = onsets[mask]
        uniq = sorted(set(hits))
        nxt = {u: (uniq[i + 1] if i + 1 < len(uniq) else u + beat_ql) for i, u in enumerate(uniq)}
        ends = np.array([min(nxt[o], o + beat_ql) for o in hits], dtype=object)
        if len(hits):
            voices.append(_events(hits, ends, pitches[mask]))
    return _Staff("PercussionClef", [e for v in voices for e in v], True, voices)


def _events(onsets, ends, pitches):
    """Chords: notes that start and end together, sorted by onset."""
    groups: dict = {}
    for s, e, p in zip(onsets, ends, pitches):
        groups.setdefault((s, e), []).append(int(p))
    return [(s, e, sorted(set(ps))) for (s, e), ps in sorted(groups.items())]


# ----------------------------------------------------------------------------------------------
# Building the music21 score


PROGRESS_NOTES = 2000  # a progress bar for scores of more notes than this


def notes_to_score(
    notes: Notes, grid: BeatGrid, *, key: Key | None = None, title: str = "",
    progress: bool | None = None,
):  # fmt: skip
    """A music21 Score of ``notes`` on ``grid``: one part per instrument, tempo marks, key.
    ``progress``: a progress bar over the parts (default: for more than PROGRESS_NOTES notes)."""
    import music21
    from tqdm import tqdm

    key = estimate_key(notes) if key is None else key
    metre = grid.metre
    bar_ql = Fraction(metre.beats_per_bar) * Fraction(metre.beat_quarters).limit_denominator(2)
    score = music21.stream.Score()
    score.metadata = music21.metadata.Metadata(title=title or "Transcription")
    score.metadata.composer = "mt3"

    staves_by_part = []
    keys = sorted(set(zip(notes.program.tolist(), notes.is_drum.tolist())),
                  key=lambda k: _order(k[0], k[1]))  # fmt: skip
    total_ql = bar_ql
    for program, is_drum in keys:
        group = notes.select((notes.program == program) & (notes.is_drum == is_drum)).sorted()
        start_b = grid.seconds_to_beats(group.start)
        end_b = grid.seconds_to_beats(group.end)
        divisions = beat_divisions(start_b, metre)  # each part its own subdivision per beat
        onsets = quantise(start_b, metre, divisions)
        if is_drum:
            staves = [_drum_staff(onsets, group.pitch, metre)]
        else:
            ends = quantise(end_b, metre, divisions)
            raw_ends = end_b * metre.beat_quarters
            if program < 8 or 16 <= program < 24 and np.ptp(group.pitch) > 24:  # keyboards
                hands = group.pitch >= SPLIT_PITCH
                staves = [
                    _Staff(clef, _events(*_legato(onsets[m], ends[m], raw_ends[m], metre),
                                         group.pitch[m]))
                    for clef, m in (("TrebleClef", hands), ("BassClef", ~hands))
                ]  # fmt: skip
            else:
                clef = _clef_for(program, group.pitch)
                staves = [_Staff(clef, _events(*_legato(onsets, ends, raw_ends, metre),
                                               group.pitch))]  # fmt: skip
        for staff in staves:
            if staff.events:
                total_ql = max(total_ql, max(e for _, e, _ in staff.events))
        staves_by_part.append((part_name(program, is_drum), program, is_drum, staves))

    bars = max(int(-(-total_ql // bar_ql)), 1)
    total_ql = bars * bar_ql
    if not staves_by_part:  # an empty transcription: one empty piano staff
        staves_by_part = [("Piano", 0, False, [_Staff("TrebleClef", [])])]

    show = len(notes) > PROGRESS_NOTES if progress is None else progress
    bar = tqdm(total=len(staves_by_part), desc="notation", unit="part", disable=not show)
    for index, (name, program, is_drum, staves) in enumerate(staves_by_part):
        bar.update()
        built = [
            _build_staff(staff, metre, key, total_ql, program, is_drum, name) for staff in staves
        ]
        for i, part in enumerate(built):
            part.id = f"P{index + 1}" + (f"-{i + 1}" if len(built) > 1 else "")
            score.insert(0, part)
        if len(built) > 1:
            group = music21.layout.StaffGroup(built, name=name, abbreviation=name[:4] + ".",
                                              symbol="brace", barTogether=True)  # fmt: skip
            score.insert(0, group)

    bar.close()
    first = score.parts[0].getElementsByClass(music21.stream.Measure).first()
    for beat, bpm in grid.tempos:
        offset = Fraction(beat) * Fraction(metre.beat_quarters).limit_denominator(2)
        measure_index = int(offset // bar_ql)
        measures = list(score.parts[0].getElementsByClass(music21.stream.Measure))
        measure = measures[min(measure_index, len(measures) - 1)] if measures else first
        referent = music21.duration.Duration(metre.beat_quarters)
        mark = music21.tempo.MetronomeMark(number=round(bpm), referent=referent)
        mark.placement = "above"
        measure.insert(float(offset - measure_index * bar_ql), mark)
    return score


def _build_staff(staff, metre, key, total_ql, program, is_drum, name):
    import music21

    part = music21.stream.PartStaff() if staff.clef != "PercussionClef" else music21.stream.Part()
    part.partName = name
    part.partAbbreviation = name[:4] + "."
    if is_drum:
        inst = music21.instrument.UnpitchedPercussion()
        inst.midiChannel = 9
    else:
        try:
            inst = music21.instrument.instrumentFromMidiProgram(int(program))
        except music21.exceptions21.InstrumentException:
            inst = music21.instrument.Instrument()
        inst.midiProgram = int(program)
    inst.partName = name
    inst.instrumentName = name
    part.insert(0, inst)

    voices = staff.voices if staff.voices is not None else _voices(staff.events)
    beat_ql = Fraction(metre.beat_quarters).limit_denominator(2)
    container = part if len(voices) <= 1 else None
    for v, events in enumerate(voices or [[]]):
        target = part if container is not None else music21.stream.Voice(id=str(v + 1))
        cursor = Fraction(0)
        for onset, end, pitches in [*events, (total_ql, total_ql, None)]:
            for a, b in _expressible(cursor, onset, beat_ql):
                target.insert(float(a), music21.note.Rest(quarterLength=b - a))
            pieces = _expressible(onset, end, beat_ql) if pitches else []
            for i, (a, b) in enumerate(pieces):
                element = _element(pitches, b - a, key, staff.percussion)
                if len(pieces) > 1 and not staff.percussion:
                    kind = "start" if i == 0 else "stop" if i == len(pieces) - 1 else "continue"
                    element.tie = music21.tie.Tie(kind)
                target.insert(float(a), element)
                if staff.percussion:
                    break  # a drum hit is not held: the rest of its time is a rest
            if staff.percussion and len(pieces) > 1:
                for a, b in pieces[1:]:
                    target.insert(float(a), music21.note.Rest(quarterLength=b - a))
            cursor = max(cursor, end)
        if target is not part:
            part.insert(0, target)
    part.insert(0, music21.meter.TimeSignature(metre.signature))
    part.insert(0, getattr(music21.clef, staff.clef)())
    if not staff.percussion:
        part.insert(0, music21.key.KeySignature(key.fifths).asKey(key.mode))
    part = part.makeNotation()
    measures = list(part.getElementsByClass(music21.stream.Measure))
    _drop_empty_voices(measures)
    return part


def _simple(duration: Fraction) -> bool:
    """A duration one note value (dotted or not) can show: n/2^k with n in 1, 3, 7."""
    if duration <= 0:
        return False
    d = duration.denominator
    return d & (d - 1) == 0 and duration.numerator in (1, 3, 7) or duration in (2, 4, 6)


def _triplet(duration: Fraction) -> bool:
    return duration > 0 and _simple(duration * Fraction(3, 2))


def _expressible(start: Fraction, end: Fraction, beat_ql: Fraction) -> list:
    """[start, end) cut into spans that one note value shows: within a beat any simple or
    triplet value; across beats only simple values starting and ending on sixteenth points that
    do not hide a beat in their middle unless they start on one."""
    if end <= start:
        return []
    length = end - start
    in_beat = (start // beat_ql) == ((end - Fraction(1, 1000)) // beat_ql)
    on_beat = start % beat_ql == 0
    if in_beat and (_simple(length) or _triplet(length)):
        return [(start, end)]
    if not in_beat and on_beat and _simple(length) and end % beat_ql == 0:
        return [(start, end)]
    if not in_beat:
        cut = (start // beat_ql + 1) * beat_ql if not on_beat else (end // beat_ql) * beat_ql
        if cut <= start or cut >= end:
            cut = (start // beat_ql + 1) * beat_ql
        return _expressible(start, cut, beat_ql) + _expressible(cut, end, beat_ql)
    # Inside one beat but not one value (e.g. five sixteenths of a 6/8 beat): largest first.
    for unit in (Fraction(1, 1), Fraction(1, 2), Fraction(1, 3), Fraction(1, 4), Fraction(1, 6),
                 Fraction(1, 8), Fraction(1, 12), Fraction(1, 16)):  # fmt: skip
        if unit < length and (start % unit == 0):
            return [(start, start + unit)] + _expressible(start + unit, end, beat_ql)
    return [(start, end)]


def _voices(events):
    """Greedy voice allocation: each chord goes to the first voice free at its onset."""
    voices: list[list] = []
    for onset, end, pitches in events:
        for voice in voices:
            if voice[-1][1] <= onset:
                voice.append((onset, end, pitches))
                break
        else:
            if len(voices) < MAX_VOICES:
                voices.append([(onset, end, pitches)])
            else:  # too many lines: the line that frees first yields
                voice = min(voices, key=lambda v: v[-1][1])
                start, stop, held = voice[-1]
                if start < onset:  # shorten its note to this onset
                    voice[-1] = (start, onset, held)
                    voice.append((onset, end, pitches))
                else:  # same onset: one chord, with the shorter duration
                    voice[-1] = (start, min(stop, end), sorted(set(held) | set(pitches)))
    return voices


def _element(pitches, duration, key, percussion):
    import music21

    ql = float(duration)
    if percussion:
        parts = []
        for p in pitches:
            display, head = DRUM_DISPLAY.get(p, OTHER_DRUM)
            n = music21.note.Unpitched(displayName=display)
            n.notehead = head
            n.stemDirection = "up"
            n.storedInstrument = None
            parts.append(n)
        if len(parts) == 1:
            parts[0].quarterLength = ql
            return parts[0]
        chord = music21.percussion.PercussionChord(parts)
        chord.quarterLength = ql
        return chord
    if len(pitches) == 1:
        return music21.note.Note(spell(pitches[0], key), quarterLength=ql)
    return music21.chord.Chord([spell(p, key) for p in pitches], quarterLength=ql)


def _drop_empty_voices(measures) -> None:
    """Voices that only rest in a bar are removed from it (the first voice stays)."""
    import music21

    for measure in measures:
        voices = list(measure.voices)
        for voice in voices[1:]:
            if not voice.getElementsByClass(music21.note.GeneralNote).notes:
                measure.remove(voice)
        if len(measure.voices) == 1:
            measure.flattenUnnecessaryVoices(force=True, inPlace=True)
        for number, voice in enumerate(measure.voices, start=1):
            voice.id = str(number)  # MusicXML voices count from 1
            for n in voice.notes:  # two lines on a staff: the first stems up, the second down
                n.stemDirection = "up" if number % 2 else "down"
            if number > 1:  # the second line's rests would crowd the first line: hide them
                for rest in voice.getElementsByClass(music21.note.Rest):
                    rest.style.hideObjectOnPrint = True
        keys = list(measure.getElementsByClass(music21.key.KeySignature))
        for duplicate in keys[1:]:  # makeNotation copies the key into the first bar again
            measure.remove(duplicate)


def score_to_musicxml(score) -> str:
    """The MusicXML text of a music21 score."""
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    return GeneralObjectExporter(score).parse().decode("utf-8")

"""Time for notation: a beat grid (beat times, tempo marks, metre, downbeats) for a set of notes.

A :class:`BeatGrid` maps seconds to beats. :func:`estimate_grid` infers one from note onsets
alone (a transcription has no tempo): an onset-strength envelope, its autocorrelation for the
tempo (a broad prior around :data:`PRIOR_BPM` picks the metrical level), a local tempo per window
that may change through the piece, dynamic-programming beat tracking that follows rubato, then
the metre from which beats carry the strongest onsets (loud, long, low and chordal notes mark
downbeats) and from whether beats divide in two or in three. :func:`grid_from_midi` reads the
grid a sequencer wrote (tempo map and time signature); :func:`midi_has_grid` tells whether the
notes of a MIDI file actually sit on it (a transcription written at a default 120 bpm does not).

Beats are counted in the metre's beat unit: a quarter in 2/4, 3/4 and 4/4, a dotted quarter in
6/8. Tempi are in those beats per minute and clamped to [MIN_BPM, MAX_BPM] with a warning.
"""

from __future__ import annotations

import dataclasses
import os
import warnings

import numpy as np

from mt3.notes import Notes

FRAMES_PER_SECOND = 100  # onset envelope resolution
MIN_BPM = 30.0
MAX_BPM = 300.0
SEARCH_MIN_BPM, SEARCH_MAX_BPM = 40.0, 240.0  # the tempi estimate_grid considers
# The log-normal tempo prior. The autocorrelation favours slow metrical levels (every level
# repeats at the bar), so the prior sits above the usual 120 bpm; 135 and 0.7 octaves were the
# best of a coarse search on the generated set of benchmarks/notation.py.
PRIOR_BPM = 135.0
PRIOR_OCTAVES = 0.7
WINDOW_SECONDS = 8.0  # local tempo windows
HOP_SECONDS = 2.0
TEMPO_CHANGE = 0.15  # a new tempo mark when the tempo moves by more than this fraction
DEFAULT_BPM = 120.0


class TempoWarning(UserWarning):
    """An estimated or written tempo outside [MIN_BPM, MAX_BPM] was clamped."""


@dataclasses.dataclass(frozen=True)
class Metre:
    """A time signature: ``beats_per_bar`` beats of ``beat_quarters`` quarter notes each."""

    beats_per_bar: int = 4
    compound: bool = False  # beats of a dotted quarter (6/8) rather than a quarter

    @property
    def beat_quarters(self) -> float:
        return 1.5 if self.compound else 1.0

    @property
    def signature(self) -> str:
        return f"{self.beats_per_bar * 3}/8" if self.compound else f"{self.beats_per_bar}/4"

    @property
    def subdivisions(self) -> tuple[int, ...]:
        """Grid steps per beat to choose from: sixteenths or eighth triplets; sixteenths in 6/8."""
        return (6,) if self.compound else (4, 3)


@dataclasses.dataclass(frozen=True)
class BeatGrid:
    """Beat times in seconds (beat 0 is a downbeat), tempo marks and the metre.

    Attributes:
      beat_seconds: float64 [n >= 2], increasing; beat i starts bar i // beats_per_bar.
      tempos: ((beat index, beats per minute), ...), the first at beat 0.
      metre: the time signature.
    """

    beat_seconds: np.ndarray
    tempos: tuple[tuple[int, float], ...]
    metre: Metre

    def seconds_to_beats(self, seconds) -> np.ndarray:
        """Positions in beats; linear beyond the first and last beat."""
        return _extrapolated_interp(np.asarray(seconds, float), self.beat_seconds)

    def beats_to_seconds(self, beats) -> np.ndarray:
        index = np.arange(len(self.beat_seconds), dtype=float)
        return _extrapolated_interp(np.asarray(beats, float), index, self.beat_seconds)


def _extrapolated_interp(x, xp, fp=None):
    fp = np.arange(len(xp), dtype=float) if fp is None else fp
    y = np.interp(x, xp, fp)
    lo_slope = (fp[1] - fp[0]) / (xp[1] - xp[0])
    hi_slope = (fp[-1] - fp[-2]) / (xp[-1] - xp[-2])
    y = np.where(x < xp[0], fp[0] + (x - xp[0]) * lo_slope, y)
    return np.where(x > xp[-1], fp[-1] + (x - xp[-1]) * hi_slope, y)


def clamp_bpm(bpm: float, what: str = "estimated tempo") -> float:
    """``bpm`` within [MIN_BPM, MAX_BPM]; a TempoWarning says when it was not."""
    if not np.isfinite(bpm) or not MIN_BPM <= bpm <= MAX_BPM:
        clamped = DEFAULT_BPM if not np.isfinite(bpm) else float(np.clip(bpm, MIN_BPM, MAX_BPM))
        warnings.warn(
            f"{what} {bpm:.4g} bpm is outside {MIN_BPM:g}-{MAX_BPM:g}; using {clamped:g} bpm",
            TempoWarning,
            stacklevel=3,
        )
        return clamped
    return float(bpm)


def uniform_grid(
    end_seconds: float, bpm: float = DEFAULT_BPM, metre: Metre | None = None
) -> BeatGrid:
    """A constant-tempo grid from 0 s that covers ``end_seconds`` (at least one bar)."""
    bpm = clamp_bpm(bpm, "tempo")
    metre = Metre() if metre is None else metre
    beats = max(int(np.ceil(end_seconds * bpm / 60.0)) + 1, metre.beats_per_bar + 1)
    return BeatGrid(np.arange(beats) * 60.0 / bpm, ((0, bpm),), metre)


# ----------------------------------------------------------------------------------------------
# Onset features


def _onset_weights(notes: Notes) -> tuple[np.ndarray, np.ndarray]:
    """(onset seconds, salience) per note: louder, longer, lower and drum-kick notes weigh more."""
    duration = np.clip(notes.end - notes.start, 0.05, 2.0)
    weight = 0.5 + notes.velocity / 127.0 + 0.5 * np.log2(duration / 0.05) / np.log2(40.0)
    low = np.where(notes.is_drum, np.isin(notes.pitch, (35, 36)), notes.pitch < 52)
    weight = weight + 1.0 * low
    weight = np.where(notes.is_drum & ~np.isin(notes.pitch, (35, 36, 38, 40)), 0.6 * weight, weight)
    return notes.start.astype(float), weight


def _envelope(onsets: np.ndarray, weights: np.ndarray, frames: int) -> np.ndarray:
    env = np.zeros(frames)
    np.add.at(
        env, np.clip(np.round(onsets * FRAMES_PER_SECOND).astype(int), 0, frames - 1), weights
    )
    kernel = np.exp(-0.5 * (np.arange(-6, 7) / 2.0) ** 2)  # 20 ms Gaussian
    return np.convolve(env, kernel / kernel.sum(), mode="same")


def _autocorrelation(env: np.ndarray) -> np.ndarray:
    x = env - env.mean()
    size = 1 << int(np.ceil(np.log2(2 * len(x) + 1)))
    spectrum = np.fft.rfft(x, size)
    acf = np.fft.irfft(spectrum * np.conj(spectrum), size)[: len(x)]
    return acf / max(acf[0], 1e-12)


_BPMS = np.exp(np.linspace(np.log(SEARCH_MIN_BPM), np.log(SEARCH_MAX_BPM), 240))


def _tempo_salience(acf: np.ndarray) -> np.ndarray:
    """For each of _BPMS, the envelope's autocorrelation at that beat period (0 if negative)."""
    lags = 60.0 * FRAMES_PER_SECOND / _BPMS
    valid = lags < len(acf) - 1
    score = np.zeros(len(_BPMS))
    score[valid] = np.interp(lags[valid], np.arange(len(acf)), acf)
    return np.maximum(score, 0.0)


def _prior(centre_bpm: float, octaves: float) -> np.ndarray:
    return np.exp(-0.5 * (np.log2(_BPMS / centre_bpm) / octaves) ** 2)


# ----------------------------------------------------------------------------------------------
# Tempo, beats and metre


def _local_tempi(env: np.ndarray, global_bpm: float) -> np.ndarray:
    """Beat period in frames for every frame: per-window tempo near the global one, smoothed."""
    window = int(WINDOW_SECONDS * FRAMES_PER_SECOND)
    hop = int(HOP_SECONDS * FRAMES_PER_SECOND)
    if len(env) <= window + hop:
        return np.full(len(env), 60.0 * FRAMES_PER_SECOND / global_bpm)
    centres, chosen = [], []
    prior = _prior(PRIOR_BPM, PRIOR_OCTAVES) * _prior(global_bpm, 0.8)
    for start in range(0, len(env) - window + 1, hop):
        piece = env[start : start + window]
        if piece.max() <= 0:
            continue
        salience = _tempo_salience(_autocorrelation(piece)) * prior
        centres.append(start + window / 2)
        chosen.append(_BPMS[int(np.argmax(salience))] if salience.max() > 0 else global_bpm)
    if not chosen:
        return np.full(len(env), 60.0 * FRAMES_PER_SECOND / global_bpm)
    chosen = np.log(np.array(chosen))
    smoothed = np.array([np.median(chosen[max(0, i - 2) : i + 3]) for i in range(len(chosen))])
    bpm = np.exp(np.interp(np.arange(len(env)), centres, smoothed))
    return 60.0 * FRAMES_PER_SECOND / bpm


def _track_beats(env: np.ndarray, period: np.ndarray, tightness: float = 30.0) -> np.ndarray:
    """Beat frames by dynamic programming: onsets on beats, intervals near the local period."""
    n = len(env)
    score = env / max(env.std(), 1e-9)
    best = score.copy()
    back = np.full(n, -1)
    for t in range(n):
        p = period[t]
        lo, hi = int(t - 2 * p), int(t - p / 2)
        if hi < 0:
            continue
        prev = np.arange(max(lo, 0), hi + 1)
        penalty = -tightness * np.log((t - prev) / p) ** 2
        candidates = best[prev] + penalty
        k = int(np.argmax(candidates))
        if candidates[k] > 0:  # otherwise a chain of beats starts here
            best[t] = score[t] + candidates[k]
            back[t] = prev[k]
    # The last beat: the best cumulative score within the last period.
    tail = int(max(n - period[-1], 0))
    t = tail + int(np.argmax(best[tail:]))
    beats = [t]
    while back[t] >= 0:
        t = back[t]
        beats.append(t)
    return np.array(beats[::-1], dtype=float)


def _beat_salience(beats: np.ndarray, notes: Notes, weights: np.ndarray) -> np.ndarray:
    """How strongly each beat sounds like a downbeat: its loudest, lowest, longest onset (a chord
    adds little more: an oom-pah accompaniment's chords must not outweigh its bass), plus how
    much the harmony changes there (chords change at bar lines more than within bars)."""
    step = float(np.median(np.diff(beats)))
    onsets = notes.start
    order = np.argsort(onsets)
    onsets, weights = onsets[order], weights[order]
    accent = np.zeros(len(beats))
    for i, b in enumerate(beats):
        lo, hi = np.searchsorted(onsets, [b - 0.1 * step, b + 0.1 * step])
        if hi > lo:
            w = weights[lo:hi]
            accent[i] = w.max() + 0.2 * (w.sum() - w.max())
    # Pitch-class content of each beat (duration-weighted), and its change from the beat before.
    pitched = notes.select(~notes.is_drum)
    chroma = np.zeros((len(beats), 12))
    edges = np.append(beats, beats[-1] + step)
    for s, e, p in zip(pitched.start, pitched.end, pitched.pitch):
        first, last = np.searchsorted(edges, [s, e], side="right") - 1
        for k in range(max(first, 0), min(last, len(beats) - 1) + 1):
            overlap = min(e, edges[k + 1]) - max(s, edges[k])
            if overlap > 0:
                chroma[k, p % 12] += overlap * (2.0 if p < 52 else 1.0)
    norms = np.linalg.norm(chroma, axis=1) + 1e-9
    similarity = np.sum(chroma[1:] * chroma[:-1], axis=1) / (norms[1:] * norms[:-1])
    change = np.concatenate([[0.0], 1.0 - similarity])
    change[norms[:] < 1e-6] = 0.0
    accent = accent / (accent.mean() + 1e-9)
    return accent + change / (change.mean() + 1e-9) * 0.7


def _grouping_scores(salience: np.ndarray) -> dict[int, tuple[float, int]]:
    """For beats per bar g: (contrast of the strongest phase against the rest, that phase)."""
    result = {}
    for g in (2, 3, 4, 6):
        if len(salience) < 2 * g:
            continue
        best = (-np.inf, 0)
        for phase in range(g):
            on = np.arange(len(salience)) % g == phase
            contrast = salience[on].mean() - salience[~on].mean()
            best = max(best, (contrast / (salience.mean() + 1e-9), phase))
        result[g] = best
    return result


def _ternary_fraction(positions: np.ndarray, tolerance: float = 0.05) -> float:
    """Of onsets off the beat and near a grid point, the share on an eighth-triplet point
    (1/3, 2/3 of a beat) rather than a sixteenth point (1/4, 1/2, 3/4)."""
    frac = positions - np.floor(positions)
    off = frac[(frac > tolerance) & (frac < 1 - tolerance)]
    on3 = np.sum(np.abs(off * 3 - np.round(off * 3)) / 3 < tolerance)
    on4 = np.sum(np.abs(off * 4 - np.round(off * 4)) / 4 < tolerance)
    return float(on3 / (on3 + on4)) if on3 + on4 else 0.0


def _extend(beats_seconds: np.ndarray, first: float, last: float) -> np.ndarray:
    """Beats continued at the edge intervals until they cover [first, last]."""
    intervals = np.diff(beats_seconds)
    head, tail = float(np.median(intervals[:4])), float(np.median(intervals[-4:]))
    before = int(max(np.ceil((beats_seconds[0] - first) / head), 0))
    after = int(max(np.floor((last - beats_seconds[-1]) / tail) + 1, 0))
    return np.concatenate([
        beats_seconds[0] - head * np.arange(before, 0, -1), beats_seconds,
        beats_seconds[-1] + tail * np.arange(1, after + 1),
    ])  # fmt: skip


def _tempo_marks(beat_seconds: np.ndarray, metre: Metre) -> tuple[tuple[int, float], ...]:
    """A mark at beat 0 and wherever the smoothed tempo settles more than TEMPO_CHANGE away."""
    bpm = 60.0 / np.diff(beat_seconds)
    bar = metre.beats_per_bar
    smooth = np.array([np.median(bpm[max(0, i - bar) : i + bar + 1]) for i in range(len(bpm))])
    marks = [(0, float(np.median(bpm[: 4 * bar])))]
    i = bar
    while i < len(smooth) - bar:
        current = marks[-1][1]
        ahead = smooth[i : i + 2 * bar]
        if np.all(np.abs(np.log(ahead / current)) > np.log1p(TEMPO_CHANGE)) and np.all(
            np.sign(ahead - current) == np.sign(ahead[0] - current)
        ):
            start = (i // bar) * bar  # tempo marks at bar lines
            marks.append((start, float(np.median(bpm[start : start + 4 * bar]))))
            i = start + 2 * bar
        else:
            i += 1
    # Refine each mark to the median of its whole stretch.
    ends = [m[0] for m in marks[1:]] + [len(bpm)]
    return tuple(
        (b, clamp_bpm(float(np.median(bpm[b:e]))))
        for (b, _), e in zip(marks, ends)  # fmt: skip
    )


def estimate_grid(notes: Notes) -> BeatGrid:
    """A beat grid, tempo marks and metre inferred from the notes' onsets (seconds)."""
    if len(notes) == 0:
        return uniform_grid(0.0)
    onsets, weights = _onset_weights(notes)
    end = float(max(notes.end.max(), onsets.max() + 0.1))
    frames = int(end * FRAMES_PER_SECOND) + 2
    env = _envelope(onsets, weights, frames)
    if len(np.unique(np.round(onsets, 2))) < 3:  # too little to find a pulse
        grid = uniform_grid(end)
        return dataclasses.replace(grid, beat_seconds=grid.beat_seconds + onsets.min())

    salience = _tempo_salience(_autocorrelation(env)) * _prior(PRIOR_BPM, PRIOR_OCTAVES)
    global_bpm = float(_BPMS[int(np.argmax(salience))])
    period = _local_tempi(env, global_bpm)
    beats = _track_beats(env, period) / FRAMES_PER_SECOND
    if len(beats) < 2:
        beats = np.array([onsets.min(), onsets.min() + 60.0 / global_bpm])
    first = float(onsets.min())
    beats = _extend(beats, first - 1e-3, end)

    positions = _extrapolated_interp(onsets, beats)
    ternary = _ternary_fraction(positions) > 0.5
    beat_salience = _beat_salience(beats, notes, weights)
    groups = _grouping_scores(beat_salience)
    bpm = float(np.median(60.0 / np.diff(beats)))
    metre, phase = _choose_metre(groups, ternary, bpm, beat_salience)
    if metre.compound and not ternary:  # beats were tracked at the eighth level: regroup by 3
        beats = _extend(beats[phase % 3 :: 3], first - 1e-3, end)
        beat_salience = _beat_salience(beats, notes, weights)
    bar = metre.beats_per_bar
    beats = _align_bars(beats, beat_salience, bar)
    # Beat 0 is a downbeat at or before the first onset: whole bars before the first one found.
    head = float(np.median(np.diff(beats[: bar + 1])))
    while beats[0] > first + 0.1 * head:
        beats = np.concatenate([beats[0] - head * np.arange(bar, 0, -1), beats])
    while len(beats) > bar and beats[bar] <= first + 0.1 * head:
        beats = beats[bar:]
    beats = _extend(beats, beats[0], end)
    last_onset = int(np.ceil(_extrapolated_interp(np.array([onsets.max()]), beats)[0]))
    return BeatGrid(beats, _tempo_marks(beats[: max(last_onset + 1, bar + 1)], metre), metre)


def _align_bars(beats: np.ndarray, salience: np.ndarray, bar: int, penalty: float = 2.0):
    """Beats from the first downbeat on, repaired so that every bar has ``bar`` beats.

    Downbeats are chosen by dynamic programming over the beats: each bar normally ``bar`` beats
    long, one beat shorter or longer at a cost of ``penalty`` (in units of the mean salience), so
    that a beat the tracker inserted or dropped (at a tempo change, say) shifts the bar lines
    only where it happened. Such a bar then loses its most crowded beat or gains one in its
    longest gap.
    """
    s = salience / (salience.mean() + 1e-9)
    n = len(beats)
    best = np.full(n, -np.inf)
    back = np.full(n, -1)
    for i in range(n):
        if i <= bar:
            best[i] = s[i]
        for length in (bar - 1, bar, bar + 1):
            j = i - length
            if length < 1 or j < 0 or not np.isfinite(best[j]):
                continue
            value = best[j] + s[i] - (penalty if length != bar else 0.0)
            if value > best[i]:
                best[i], back[i] = value, j
    last = n - 1 - bar + int(np.argmax(best[n - 1 - bar :])) if n > bar else int(np.argmax(best))
    downbeats = [last]
    while back[downbeats[-1]] >= 0:
        downbeats.append(int(back[downbeats[-1]]))
    downbeats = downbeats[::-1]
    out = []
    for d, e in zip(downbeats[:-1], downbeats[1:]):
        inside = list(beats[d:e])
        if len(inside) == bar + 1:  # one beat too many: drop the one that evens the bar most
            spreads = [np.std(np.diff(np.delete(beats[d : e + 1], k))) for k in range(1, bar + 1)]
            del inside[1 + int(np.argmin(spreads))]
        elif len(inside) == bar - 1:  # one too few: split the longest gap
            gaps = np.diff(beats[d : e + 1])
            k = int(np.argmax(gaps))
            inside.insert(k + 1, beats[d + k] + gaps[k] / 2)
        out.extend(inside)
    out.extend(beats[downbeats[-1] :])
    return np.array(out) if len(out) >= 2 else beats


def _choose_metre(groups, ternary: bool, bpm: float, salience) -> tuple[Metre, int]:
    """Beats per bar from the contrast of the accent patterns (4 unless 2 or 3 is clearly
    stronger); compound (6/8) when two beats to the bar divide in three, or when three fast
    beats divide in two (the beats were eighths)."""
    if not groups:
        return Metre(4), 0
    score = {g: s for g, (s, _) in groups.items()}
    phase = {g: p for g, (_, p) in groups.items()}
    if 3 in score and score[3] > 1.15 * max(score.get(4, 0), score.get(2, 0)):
        # Fast beats in threes whose first beat alternates strong and weaker are the eighths
        # of 6/8; fast 3/4 has equally strong downbeats.
        if not ternary and bpm > 130 and score.get(6, 0) > 1.1 * score[3]:
            return Metre(2, compound=True), phase[6]
        return Metre(3), phase[3]
    if 4 not in score:
        return Metre(2, compound=ternary), phase.get(2, 0)
    if ternary and 2 in score and score[2] >= score[4]:  # 6/8 rather than 4/4 in triplets
        return Metre(2, compound=True), phase[2]
    # Four beats to the bar when the bar's first beat stands out from its third; two otherwise.
    p = phase[4]
    strong, mid = salience[p::4].mean(), salience[p + 2 :: 4].mean()
    weak = salience[p + 1 :: 2].mean()
    if strong - mid < 0.3 * (strong - weak):
        return Metre(2, compound=ternary), p % 2
    return Metre(4), p


# ----------------------------------------------------------------------------------------------
# A sequencer's own grid


def grid_from_midi(path: str | os.PathLike) -> BeatGrid:
    """The grid written in a MIDI file: its tempo map and its first time signature (x/4, x/2
    in quarters, 6/8, 9/8, 12/8; others become 4/4)."""
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(str(path))
    signature = midi.time_signature_changes[0] if midi.time_signature_changes else None
    num, den = (signature.numerator, signature.denominator) if signature else (4, 4)
    if den == 8 and num % 3 == 0:
        metre = Metre(num // 3, compound=True)
    elif den == 4 and 1 <= num <= 12:
        metre = Metre(num)
    elif den == 2 and 1 <= num <= 6:
        metre = Metre(num * 2)  # in quarters: 2/2 is written 4/4, 3/2 is 6/4
    else:  # 5/8, 7/8, ...: bars of four quarters, the notes still at their times
        metre = Metre(4)
    step = int(round(midi.resolution * metre.beat_quarters))
    end = max(midi.get_end_time(), 1e-3)
    last_tick = midi.time_to_tick(end) + step
    ticks = np.arange(0, last_tick + step, step)
    if len(ticks) < metre.beats_per_bar + 1:
        ticks = np.arange(metre.beats_per_bar + 1) * step
    seconds = np.array([midi.tick_to_time(int(t)) for t in ticks])
    bpm = 60.0 / np.diff(seconds)
    marks = [(0, clamp_bpm(float(bpm[0]), f"{path}: tempo"))]
    for i in range(1, len(bpm)):
        if abs(np.log(bpm[i] / marks[-1][1])) > 0.005:
            marks.append((i, clamp_bpm(float(bpm[i]), f"{path}: tempo")))
    return BeatGrid(seconds, tuple(marks), metre)


def midi_has_grid(path: str | os.PathLike, notes: Notes, tolerance_beats: float = 0.04) -> bool:
    """Whether at least 90 % of the onsets lie on a sixteenth or triplet of the file's grid."""
    if len(notes) == 0:
        return True
    grid = grid_from_midi(path)
    quarters = grid.seconds_to_beats(notes.start) * grid.metre.beat_quarters
    on16 = np.abs(quarters * 4 - np.round(quarters * 4)) / 4
    on12 = np.abs(quarters * 3 - np.round(quarters * 3)) / 3
    return float(np.mean(np.minimum(on16, on12) <= tolerance_beats)) >= 0.9

"""Transcription metrics as MT3 computes them per recording (docs/mt3.md §8), built on mir_eval.

``score(ref, est)`` returns a flat dict keyed by MT3's metric names ("Onset F1",
"Onset + offset + program F1 (full)", "Frame F1", ...); ``mean_scores`` averages recordings the way
MT3 reports datasets (a plain mean of per-recording values).

What is computed, per recording:

- Drum-free, program-agnostic note scores with mir_eval: onset, onset + offset, and both with
  velocity (mir_eval.transcription_velocity). Defaults: 50 ms onsets, 50 cents, offsets within
  max(20 % of the reference duration, 50 ms). Zero-length notes are skipped.
- Frame precision/recall/F1 on pretty_midi piano rolls at 62.5 frames/s: notes shorter than
  50 ms are lengthened to 50 ms (every note, when the drum-free reference is empty, as MT3's
  "all drums" test then passes), the reference counts where its summed velocity exceeds 30, the
  estimate where it is above 0.
- Program-aware F1 at the flat, midi_class and full granularities: mir_eval per (program, is_drum)
  group (drums on onsets only), pooled with precision weighted by estimated-note counts and
  recall by reference-note counts. Drum programs are not remapped, so a drum kit on program 25
  never matches drums on program 0, as in MT3.
- The onset+offset tolerance sweep (10 ms ... 500 ms), scored on the notes *after* the frame step's
  50 ms lengthening, reproducing MT3's in-place mutation.
- Optional per-stem scores (``track_specs``, Cerberus4 style), and the decoder's invalid and dropped
  event counts when given.

Deliberate differences from MT3: two empty recordings score 0 everywhere instead of crashing inside
scikit-learn, and the frame scores are computed with NumPy rather than scikit-learn (same values).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from mt3.errors import Mt3Error
from mt3.notes import Notes
from mt3.vocab import PROGRAM_GRANULARITIES, map_program

FRAMES_PER_SECOND = 62.5
REFERENCE_VELOCITY_THRESHOLD = 30
MIN_FRAME_NOTE_SECONDS = 0.05
TOLERANCE_SWEEP_SECONDS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
HEADLINE_METRICS = (
    "Onset F1",
    "Onset + offset F1",
    "Frame F1",
    "Onset + offset + program F1 (full)",
    "Drum onset F1 (full)",
)


@dataclasses.dataclass(frozen=True)
class TrackSpec:
    """One stem of a per-stem evaluation (Cerberus4: bass 32, drums, guitar 24, piano 0)."""

    name: str
    program: int = 0
    is_drum: bool = False


CERBERUS4_TRACKS = (
    TrackSpec("bass", 32),
    TrackSpec("drums", 0, is_drum=True),
    TrackSpec("guitar", 24),
    TrackSpec("piano", 0),
)


def _intervals(notes: Notes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(intervals [n, 2], pitches in Hz [n], velocities [n]) without zero-length notes."""
    import mir_eval

    keep = notes.start < notes.end
    intervals = np.stack([notes.start[keep], notes.end[keep]], axis=1).reshape(-1, 2)
    pitches = mir_eval.util.midi_to_hz(notes.pitch[keep].astype(np.float64))
    return intervals, pitches, notes.velocity[keep].astype(np.float64)


def _prf(ref: Notes, est: Notes, *, velocity: bool = False, **kwargs) -> tuple[float, float, float]:
    import mir_eval

    ref_intervals, ref_pitches, ref_velocities = _intervals(ref)
    est_intervals, est_pitches, est_velocities = _intervals(est)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mir_eval warns on empty inputs and returns zeros
        if velocity:
            p, r, f, _ = mir_eval.transcription_velocity.precision_recall_f1_overlap(
                ref_intervals, ref_pitches, ref_velocities,
                est_intervals, est_pitches, est_velocities, **kwargs,
            )  # fmt: skip
        else:
            p, r, f, _ = mir_eval.transcription.precision_recall_f1_overlap(
                ref_intervals, ref_pitches, est_intervals, est_pitches, **kwargs
            )
    return float(p), float(r), float(f)


def _f_measure(precision: float, recall: float) -> float:
    if precision == 0 and recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def note_scores(ref: Notes, est: Notes, prefix: str = "", *, offsets: bool = True) -> dict:
    """Onset (+ offset) (+ velocity) precision/recall/F1 of two note sets, ignoring programs."""
    scores = {}
    variants = [("Onset", False, None), ("Onset + velocity", True, None)]
    if offsets:
        variants[1:1] = [("Onset + offset", False, 0.2)]
        variants.append(("Onset + offset + velocity", True, 0.2))
    for name, velocity, offset_ratio in variants:
        p, r, f = _prf(ref, est, velocity=velocity, offset_ratio=offset_ratio)
        scores.update({f"{prefix}{name} precision": p, f"{prefix}{name} recall": r})
        scores[f"{prefix}{name} F1"] = f
    return scores


def lengthen_for_frames(notes: Notes, all_notes: bool) -> Notes:
    """MT3's piano-roll preparation: notes under 50 ms (or all notes) become exactly 50 ms long."""
    short = all_notes | (notes.end - notes.start < MIN_FRAME_NOTE_SECONDS)
    return notes.replace(end=np.where(short, notes.start + MIN_FRAME_NOTE_SECONDS, notes.end))


def piano_roll(notes: Notes, frames_per_second: float = FRAMES_PER_SECOND) -> np.ndarray:
    """float64 [128, frames]: summed velocities per pitch and frame, as pretty_midi rasterises
    (frames int(start*fs) .. int(end*fs), width int(fs * latest end))."""
    if len(notes) == 0:
        return np.zeros((128, 0))
    width = int(frames_per_second * notes.end.max())
    roll = np.zeros((128, width))
    first = (notes.start * frames_per_second).astype(np.int64)
    last = (notes.end * frames_per_second).astype(np.int64)
    for pitch, a, b, velocity in zip(notes.pitch, first, last, notes.velocity):
        roll[pitch, a:b] += velocity
    return roll


def frame_scores(ref: Notes, est: Notes, prefix: str = "") -> dict:
    """Frame precision/recall/F1 of two (already lengthened) note sets."""
    ref_roll, est_roll = piano_roll(ref), piano_roll(est)
    width = max(ref_roll.shape[1], est_roll.shape[1])
    ref_active = (
        np.pad(ref_roll, ((0, 0), (0, width - ref_roll.shape[1]))) > REFERENCE_VELOCITY_THRESHOLD
    )
    est_active = np.pad(est_roll, ((0, 0), (0, width - est_roll.shape[1]))) > 0
    true_positives = float(np.sum(ref_active & est_active))
    precision = true_positives / est_active.sum() if est_active.any() else 0.0
    recall = true_positives / ref_active.sum() if ref_active.any() else 0.0
    return {
        f"{prefix}Frame Precision": precision,
        f"{prefix}Frame Recall": recall,
        f"{prefix}Frame F1": _f_measure(precision, recall),
    }


def program_aware_scores(ref: Notes, est: Notes, granularity: str) -> dict:
    """Multi-instrument F1 at one granularity: mir_eval per (program, is_drum) group, pooled."""
    ref = ref.replace(
        program=np.where(ref.is_drum, ref.program, map_program(ref.program, granularity))
    )
    est = est.replace(
        program=np.where(est.is_drum, est.program, map_program(est.program, granularity))
    )
    groups = set(zip(ref.program.tolist(), ref.is_drum.tolist()))
    groups |= set(zip(est.program.tolist(), est.is_drum.tolist()))
    # sums[is_drum] = [precision * n_est, n_est, recall * n_ref, n_ref]
    sums = {False: np.zeros(4), True: np.zeros(4)}
    for program, is_drum in groups:
        ref_group = ref.select((ref.program == program) & (ref.is_drum == is_drum))
        est_group = est.select((est.program == program) & (est.is_drum == is_drum))
        p, r, _ = _prf(ref_group, est_group, offset_ratio=None if is_drum else 0.2)
        n_est = int(np.sum(est_group.start < est_group.end))
        n_ref = int(np.sum(ref_group.start < ref_group.end))
        sums[is_drum] += (p * n_est, n_est, r * n_ref, n_ref)

    def pooled(total):
        precision = total[0] / total[1] if total[1] else 0.0
        recall = total[2] / total[3] if total[3] else 0.0
        return precision, recall, _f_measure(precision, recall)

    scores = {}
    for name, total in (
        ("Onset + offset + program", sums[False] + sums[True]),
        ("Drum onset", sums[True]),
        ("Nondrum onset + offset + program", sums[False]),
    ):
        p, r, f = pooled(total)
        scores[f"{name} precision ({granularity})"] = float(p)
        scores[f"{name} recall ({granularity})"] = float(r)
        scores[f"{name} F1 ({granularity})"] = float(f)
    return scores


def tolerance_sweep(ref: Notes, est: Notes) -> dict:
    """Onset + offset scores with onset tolerance = minimum offset tolerance = t, for each t."""
    scores = {}
    for tolerance in TOLERANCE_SWEEP_SECONDS:
        p, r, f = _prf(ref, est, onset_tolerance=tolerance, offset_min_tolerance=tolerance)
        scores[f"Onset + offset precision ({tolerance})"] = p
        scores[f"Onset + offset recall ({tolerance})"] = r
        scores[f"Onset + offset F1 ({tolerance})"] = f
    return scores


def score(
    ref: Notes,
    est: Notes,
    *,
    invalid_events: int = 0,
    dropped_events: int = 0,
    track_specs: Sequence[TrackSpec] | None = None,
) -> dict[str, float]:
    """All of MT3's per-recording metrics for one reference/estimate pair (module docstring).

    Args:
      ref: reference notes (sustain applied, not overlap-trimmed).
      est: estimated notes.
      invalid_events, dropped_events: decoder counters to report alongside.
      track_specs: per-stem evaluation, e.g. CERBERUS4_TRACKS.
    """
    scores = {"Invalid events": float(invalid_events), "Dropped events": float(dropped_events)}
    ref_melodic, est_melodic = ref.select(~ref.is_drum), est.select(~est.is_drum)
    scores.update(note_scores(ref_melodic, est_melodic))
    all_drums = bool(np.all(ref_melodic.is_drum))  # True when the drum-free reference is empty
    ref_framed = lengthen_for_frames(ref_melodic, all_drums)
    est_framed = lengthen_for_frames(est_melodic, all_drums)
    scores.update(frame_scores(ref_framed, est_framed))
    for granularity in PROGRAM_GRANULARITIES:
        scores.update(program_aware_scores(ref, est, granularity))
    scores.update(tolerance_sweep(ref_framed, est_framed))
    for spec in track_specs or ():
        scores.update(track_scores(ref, est, spec))
    return scores


def track_scores(ref: Notes, est: Notes, spec: TrackSpec) -> dict:
    """Note and frame scores of one stem: the notes with the stem's (program, is_drum)."""

    def pick(notes):
        return notes.select((notes.is_drum == spec.is_drum) & (notes.program == spec.program))

    ref_track, est_track = pick(ref), pick(est)
    prefix = f"{spec.name}/"
    scores = note_scores(ref_track, est_track, prefix, offsets=not spec.is_drum)
    scores.update(
        frame_scores(
            lengthen_for_frames(ref_track, spec.is_drum),
            lengthen_for_frames(est_track, spec.is_drum),
            prefix,
        )
    )
    return scores


def mean_scores(per_recording: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Mean of each metric over the recordings that report it (MT3's dataset-level number)."""
    per_recording = list(per_recording)
    names = dict.fromkeys(name for scores in per_recording for name in scores)
    return {name: float(np.mean([s[name] for s in per_recording if name in s])) for name in names}


# ----------------------------------------------------------------------------------------------
# Files and folders

NOTE_FILE_SUFFIXES = (".mid", ".midi", ".json")


class ScoreInputError(Mt3Error, ValueError):
    """Reference and estimate paths that cannot be paired."""


def pair_files(ref_path, est_path) -> list[tuple[str, object, object]]:
    """(name, reference path, estimate path) pairs: two files, or two folders matched by file stem.

    Files in a folder count when they end in .mid, .midi or .json; when a recording has both a
    MIDI and a JSON file (`mt3 transcribe --format midi,json`), the MIDI file is scored. A
    reference without an estimate (or the reverse) is an error naming the file, so a typo never
    silently drops a recording.
    """
    from pathlib import Path

    ref_path, est_path = Path(ref_path), Path(est_path)
    for path in (ref_path, est_path):
        if not path.exists():
            raise ScoreInputError(f"{path}: no such file or folder")
    if ref_path.is_dir() != est_path.is_dir():
        raise ScoreInputError(f"{ref_path} and {est_path}: give two files or two folders")
    if not ref_path.is_dir():
        return [(ref_path.stem, ref_path, est_path)]

    def index(folder):
        files = {}
        for path in sorted(folder.iterdir()):
            suffix = path.suffix.lower()
            if suffix not in NOTE_FILE_SUFFIXES:
                continue
            other = files.get(path.stem)
            if other is not None and (suffix == ".json") == (other.suffix.lower() == ".json"):
                raise ScoreInputError(f"{folder}: two MIDI files are named {path.stem}.*")
            if other is None or other.suffix.lower() == ".json":  # MIDI wins over JSON
                files[path.stem] = path
        return files

    refs, ests = index(ref_path), index(est_path)
    if not refs:
        raise ScoreInputError(f"{ref_path}: no .mid, .midi or .json files")
    missing = sorted(set(refs) ^ set(ests))
    if missing:
        name = missing[0]
        side = est_path if name in refs else ref_path
        raise ScoreInputError(
            f"{side}: no file for {name!r} ({len(missing)} unmatched in all); "
            "reference and estimate folders must hold the same file names"
        )
    return [(name, refs[name], ests[name]) for name in refs]


def score_files(ref_path, est_path, *, track_specs=None) -> tuple[dict, dict[str, dict]]:
    """Score MIDI/JSON files or folders; sustain is applied to references only.

    Returns:
      (mean scores over recordings, {recording name: scores}).
    """
    from mt3.notes import read_notes

    per_recording = {}
    for name, ref_file, est_file in pair_files(ref_path, est_path):
        ref = read_notes(ref_file, sustain=True)
        est = read_notes(est_file, sustain=False)
        per_recording[name] = score(ref, est, track_specs=track_specs)
    return mean_scores(per_recording.values()), per_recording

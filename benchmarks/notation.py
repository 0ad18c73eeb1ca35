"""Sheet music from notes: tempo, metre and note positions on generated pieces.

    python -m benchmarks.notation [--bars 16] [--seeds 1]

Generates pieces with a known grid (mt3.notation.testpieces: piano, string quartet and band with
drums; 3/4 and 4/4 at 60-180 bpm, 2/4 and 6/8 (its tempo in dotted quarters) at 60-120;
straight, swing (not in 2/4: swung 2/4 is 6/8), rubato +-8 % and a tempo change), notates them
from their onsets alone (no tempo given), reads the MusicXML back with music21 and prints one
row per piece and a summary: the tempo mark within 4 % of the truth (a tempo change needs both
marks), the time signature, the share of notes at their exact grid position (up to a shift of
whole bars), the share in the right beat, and the key. Octave errors of the tempo (half or
double) are counted apart: they are wrong, but a musician can still read them.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from mt3.notation import notate
from mt3.notation.grid import Metre
from mt3.notation.score import Key
from mt3.notation.testpieces import ENSEMBLES, generate_piece, read_back

KEYS = (Key(0, "major"), Key(-2, "major"), Key(3, "major"), Key(0, "minor"), Key(-3, "minor"))


def cases(seeds: int, first_seed: int = 0):
    index = 0
    for seed in range(first_seed, first_seed + seeds):
        for metre in (Metre(4), Metre(3), Metre(2, compound=True), Metre(2)):
            tempi = (60, 80, 100, 120, 140, 160, 180)
            if metre.compound or metre.beats_per_bar == 2:
                tempi = (60, 90, 120)
            for bpm in tempi:
                for variant in ("straight", "swing", "rubato"):
                    if variant == "swing" and metre.beats_per_bar == 2:  # swung 2/4 is 6/8
                        continue
                    index += 1
                    yield dict(
                        seed=seed * 1000 + index, ensemble=ENSEMBLES[index % 3], bpm=bpm,
                        metre=metre, key=KEYS[index % len(KEYS)], swing=variant == "swing",
                        rubato=0.08 if variant == "rubato" else 0.0,
                    ), variant  # fmt: skip
        for bpm, new in ((80, 120), (140, 100)):
            index += 1
            yield dict(seed=seed * 1000 + index, ensemble=ENSEMBLES[index % 3], bpm=bpm,
                       metre=Metre(4), tempo_change=(8, new)), "change"  # fmt: skip


def write_examples(folder: str) -> None:
    """PNG pages of three generated pieces, to look at."""
    from pathlib import Path

    from mt3.notation import write_sheet

    Path(folder).mkdir(parents=True, exist_ok=True)
    examples = {
        "piano": dict(ensemble="piano", bpm=88, metre=Metre(3), key=Key(-3, "major")),
        "quartet": dict(ensemble="quartet", bpm=72, metre=Metre(4), key=Key(2, "minor")),
        "band": dict(ensemble="band", bpm=132, metre=Metre(4), key=Key(1, "major"), swing=True),
    }
    for name, kwargs in examples.items():
        piece = generate_piece(11, bars=12, **kwargs)
        path = Path(folder) / f"{name}.score.png"
        write_sheet(notate(piece.notes, title=f"Generated {name}"), path, "score-png")
        print(f"wrote {path}")


def transcribed(checkpoint: str, count: int) -> None:
    """Render generated pieces with the General MIDI soundfont, transcribe them with a model,
    notate the transcription and compare with the truth (a table like the main one, plus the
    model's onset F1 against the generated notes)."""
    import tempfile

    import mt3
    from mt3.infer import TranscribeOptions, Transcriber
    from mt3.metrics import score
    from mt3.render import render_notes, write_wav

    examples = [
        dict(ensemble="piano", bpm=100, metre=Metre(4), key=Key(-1, "major")),
        dict(ensemble="piano", bpm=84, metre=Metre(3), key=Key(2, "major")),
        dict(ensemble="band", bpm=120, metre=Metre(4), key=Key(0, "minor")),
        dict(ensemble="quartet", bpm=66, metre=Metre(2, compound=True), key=Key(1, "major")),
    ][:count]
    transcriber = Transcriber(mt3.load_model(checkpoint), TranscribeOptions(batch_size=4))
    print(f"{'ensemble':8} {'metre':5} {'bpm':>4} {'est':>5} {'tempo':5} {'metre':6} "
          f"{'grid':>5} {'beat':>5} {'key':4} {'onsetF1':>7} {'notes':>9}")  # fmt: skip
    for i, kwargs in enumerate(examples):
        piece = generate_piece(100 + i, bars=6, jitter_seconds=0.0, **kwargs)
        with tempfile.TemporaryDirectory() as folder:
            path = f"{folder}/piece.wav"
            write_wav(render_notes(piece.notes, 44100), 44100, path)
            notes = transcriber.transcribe(path, progress=True).notes
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sheet = notate(notes)
            back = read_back(sheet.musicxml, piece)
            f1 = score(piece.notes, notes)["Onset F1"]
        beat = piece.metre.beat_quarters
        est = back.tempos[0][1] / beat if back.tempos else float("nan")
        print(f"{kwargs['ensemble']:8} {piece.metre.signature:5} {piece.bpm:4.0f} {est:5.0f} "
              f"{'ok' if abs(est / piece.bpm - 1) <= 0.04 else 'NO':5} "
              f"{'ok' if back.signature == piece.metre.signature else back.signature:6} "
              f"{back.on_grid:5.2f} {back.on_beat:5.2f} "
              f"{'ok' if back.key == (piece.key.fifths, piece.key.mode) else 'NO':4} {f1:7.2f} "
              f"{len(notes):4d}/{len(piece.notes):<4d}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bars", type=int, default=16)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--first-seed", type=int, default=0, help="for a set not tuned on")
    parser.add_argument("--pages", help="write example PNG pages here")
    parser.add_argument("--checkpoint", help="also notate this model's transcriptions of rendered "
                        "pieces (mt3 convert-checkpoint output)")  # fmt: skip
    parser.add_argument("--transcribe", type=int, default=3, help="pieces for --checkpoint")
    args = parser.parse_args()
    if args.pages:
        write_examples(args.pages)
    if args.checkpoint:
        transcribed(args.checkpoint, args.transcribe)
        return
    rows = []
    header = (f"{'ensemble':8} {'metre':5} {'variant':8} {'bpm':>5} {'est':>11} {'tempo':5} "
              f"{'metre':6} {'grid':>5} {'beat':>5} {'key':4} {'sec':>4}")  # fmt: skip
    print(header)
    print("-" * len(header))
    for kwargs, variant in cases(args.seeds, args.first_seed):
        piece = generate_piece(bars=args.bars, **kwargs)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sheet = notate(piece.notes)
            back = read_back(sheet.musicxml, piece)
        seconds = time.perf_counter() - start
        beat = piece.metre.beat_quarters
        truth = [piece.bpm] + ([piece.tempo_change[1]] if piece.tempo_change else [])
        estimated = [bpm / beat for _, bpm in back.tempos]
        tempo_ok = len(estimated) == len(truth) and all(
            abs(e / t - 1) <= 0.04 for e, t in zip(estimated, truth)
        )
        octave = not tempo_ok and abs(abs(np.log2(estimated[0] / truth[0])) - 1) < 0.06
        metre_ok = back.signature == piece.metre.signature
        key_ok = back.key == (piece.key.fifths, piece.key.mode)
        rows.append((tempo_ok, octave, metre_ok, back.on_grid, back.on_beat, key_ok, variant))
        est = "/".join(f"{e:.0f}" for e in estimated)
        print(f"{kwargs['ensemble']:8} {piece.metre.signature:5} {variant:8} "
              f"{'/'.join(f'{t:.0f}' for t in truth):>5} {est:>11} "
              f"{'ok' if tempo_ok else 'x2' if octave else 'NO':5} "
              f"{'ok' if metre_ok else back.signature:6} {back.on_grid:5.2f} {back.on_beat:5.2f} "
              f"{'ok' if key_ok else 'NO':4} {seconds:4.1f}")  # fmt: skip
    print()
    print(f"{'variant':9} {'pieces':>6} {'tempo':>6} {'octave':>7} {'metre':>6} {'grid':>6} "
          f"{'beat':>6} {'key':>6}")  # fmt: skip
    for name in ("straight", "swing", "rubato", "change", "all"):
        chosen = [r for r in rows if name in ("all", r[6])]
        if not chosen:
            continue
        cols = np.array([r[:6] for r in chosen], float).mean(axis=0)
        print(f"{name:9} {len(chosen):6d} {cols[0]:6.0%} {cols[1]:7.0%} {cols[2]:6.0%} "
              f"{cols[3]:6.1%} {cols[4]:6.1%} {cols[5]:6.0%}")  # fmt: skip


if __name__ == "__main__":
    main()

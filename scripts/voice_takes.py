"""A folder of fine-tuning takes: generated pieces (mt3.data.synth) voiced on one GM program and
rendered with the training soundfonts (mt3.render), one WAV + MIDI pair per take, ready for
`mt3 prepare folder`. gin/finetune.gin's measured set is

    python scripts/voice_takes.py takes-steeldrums --program 114 --count 100 --seconds 10
    mt3 prepare folder --raw takes-steeldrums --out data/steeldrums --split auto \\
        --validation-fraction 0.2
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mt3.audio import SAMPLE_RATE
from mt3.data.synth import KINDS, generate_piece
from mt3.notes import write_midi
from mt3.render import render_notes, training_soundfonts, write_wav

PEAK = 0.9
FIRST_SEED = 10_000  # away from the seeds of `mt3 prepare synth-*` (0 ...)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--program", type=int, required=True, help="GM program, 0-127")
    parser.add_argument("--kind", default="piano", choices=KINDS, help="the generator's music")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    if not 0 <= args.program <= 127:
        parser.error(f"--program must be 0-127, got {args.program}")
    args.out.mkdir(parents=True, exist_ok=True)
    fonts = training_soundfonts()
    for index in range(args.count):
        notes = generate_piece(args.kind, FIRST_SEED + index, args.seconds)
        notes = notes.replace(program=np.full(len(notes), args.program, notes.program.dtype))
        audio = render_notes(notes, SAMPLE_RATE, fonts[index % len(fonts)])
        audio = audio * (PEAK / max(float(np.abs(audio).max()), 1e-6))
        write_midi(notes, args.out / f"take{index:03d}.mid")
        write_wav(audio, SAMPLE_RATE, args.out / f"take{index:03d}.wav")
    print(f"{args.count} takes in {args.out} ({', '.join(f.name for f in fonts)})")


if __name__ == "__main__":
    main()

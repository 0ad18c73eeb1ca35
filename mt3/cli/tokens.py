"""`mt3 tokens`: the per-segment training targets MT3 would build for a MIDI file."""

from __future__ import annotations

import argparse
import json

from mt3.cli import add_overwrite, add_variant, command_parser

EPILOG = """\
examples:
  mt3 tokens song.mid                       readable tokens, mt3 vocabulary
  mt3 tokens song.mid --variant ismir2021 --json > targets.json
  mt3 tokens song.mid --duration 30 --json -o targets.json

The audio length decides the segments: --duration seconds of 16 kHz audio (default: the MIDI's end
after the sustain pedal) make round(S*16000)//128 + 1 frames, cut into 256-frame (mt3) or
512-frame (ismir2021) segments. JSON: {"vocab", "duration", "segments": [{"start_time", "tokens"}]},
tokens are model ids (codec index + 3) ending with EOS = 1.
"""


def register(subparsers) -> None:
    parser = command_parser(
        subparsers, "tokens", "MIDI -> MT3 training target tokens per segment", __doc__, EPILOG
    )
    parser.add_argument("midi", help="a .mid/.midi file (sustain pedal is applied)")
    add_variant(parser, "--vocab", help="whose vocabulary and segment length")
    parser.add_argument("--duration", type=float, help="audio length in seconds")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a listing")
    parser.add_argument("-o", "--out", help="write the JSON to this file instead of stdout")
    add_overwrite(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from mt3.atomic import atomic_write_text, check_outputs
    from mt3.audio import SAMPLE_RATE
    from mt3.config import get_variant
    from mt3.errors import UsageError
    from mt3.events import notes_to_segment_tokens
    from mt3.notes import MAX_SECONDS, read_midi
    from mt3.vocab import vocabulary

    variant = get_variant(args.variant)
    if args.out:
        check_outputs([args.out], [args.midi], overwrite=args.overwrite)
    midi = read_midi(args.midi)
    duration = midi.end_time if args.duration is None else args.duration
    if not 0 <= duration <= MAX_SECONDS:
        raise UsageError(
            f"--duration must be a non-negative number of seconds, at most {MAX_SECONDS:.0f} "
            f"(24 h); got {duration}"
        )
    segments = notes_to_segment_tokens(
        midi.notes,
        variant.vocab,
        num_samples=round(duration * SAMPLE_RATE),
        segment_frames=variant.segment_frames,
    )
    payload = {
        "vocab": variant.vocab,
        "duration": duration,
        "segments": [{"start_time": s.start_time, "tokens": s.tokens} for s in segments],
    }
    if args.out:
        atomic_write_text(args.out, json.dumps(payload) + "\n")
    elif args.json:
        print(json.dumps(payload))
    else:
        vocab = vocabulary(variant.vocab)
        print(f"{args.midi}: {len(midi.notes)} notes, {duration:.3f} s, {len(segments)} segments")
        for segment in segments:
            words = " ".join(vocab.describe(t).replace(" ", "=") for t in segment.tokens)
            print(f"{segment.start_time:8.3f}s {len(segment.tokens):4d} | {words}")

"""`mt3 transcribe`: audio files -> multi-instrument MIDI (and JSON notes, piano roll, audio)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mt3.cli import command_parser

EPILOG = """\
examples:
  mt3 transcribe song.mp3 --checkpoint converted/mt3            -> ./song.mid
  mt3 transcribe a.wav b.flac -o out/ --format midi,png,wav --checkpoint converted/mt3
  mt3 transcribe piano.wav --checkpoint converted/ismir2021 --model-config ismir2021
  mt3 transcribe band.wav --checkpoint ckpt --instruments piano,bass,drums
  mt3 transcribe take.wav --checkpoint ckpt --reference take.mid --format midi,png
  mt3 transcribe piano.wav --checkpoint runs/demo       (a training workdir: its latest step)

Any length of audio works: files are read in blocks and cut into 2.048 s segments (4.096 s for
ismir2021) that are decoded in batches. Output files are named after each input; -o is a folder, or
with one input a .mid path. --format wav renders the transcription with a General MIDI soundfont so
you can listen to it beside the original. --dump-tokens writes the raw decoded ids per segment.
"""


def register(subparsers) -> None:
    parser = command_parser(
        subparsers, "transcribe", "audio -> MIDI with instruments", __doc__, EPILOG
    )
    parser.add_argument("audio", nargs="+", help="wav, flac, ogg, mp3, ... files")
    parser.add_argument("-o", "--output", default=".", help="output folder, or a .mid path")
    parser.add_argument(
        "--checkpoint", help="an mt3 checkpoint folder (see convert-checkpoint) or a training run"
    )
    parser.add_argument("--model-config", help="expected variant (mt3, ismir2021, ...): checked")
    parser.add_argument("--batch-size", type=int, default=8, help="segments per device call")
    parser.add_argument("--format", default="midi", help="comma list of midi, json, png, wav")
    parser.add_argument("--dump-tokens", help="write decoded ids per segment to this JSON file")
    parser.add_argument("--decode", default="mt3", choices=["mt3", "greedy", "beam"],
                        help="mt3: t5x beam search with 1 beam (MT3's); greedy; beam")  # fmt: skip
    parser.add_argument("--beams", type=int, default=4, help="beams for --decode beam")
    parser.add_argument("--max-tokens", type=int, default=1024,
                        help="stop a segment after this many ids (MT3: 1024)")  # fmt: skip
    parser.add_argument("--instruments", help="allowed instruments, e.g. piano,bass,drums or 0,33")
    parser.add_argument("--reference", help="reference MIDI drawn under the piano roll")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from mt3.infer import (
        OUTPUT_FORMATS,
        TranscribeError,
        TranscribeOptions,
        output_bases,
        transcribe_files,
    )
    from mt3.model.decoding import DecodeOptions

    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    unknown = [f for f in formats if f not in OUTPUT_FORMATS]
    if unknown or not formats:
        raise TranscribeError(f"--format takes {', '.join(OUTPUT_FORMATS)}; got {args.format!r}")
    bases = output_bases(args.audio, args.output)
    options = TranscribeOptions(
        batch_size=args.batch_size,
        decode=DecodeOptions(mode=args.decode, num_beams=args.beams, max_length=args.max_tokens),
        instruments=args.instruments,
    )
    for audio, written, result in transcribe_files(
        args.audio, bases, args.checkpoint, options, formats,
        model_config=args.model_config, dump_tokens=args.dump_tokens, reference=args.reference,
    ):  # fmt: skip
        print(
            f"{audio}: {len(result.notes)} notes, {result.duration_seconds:.1f} s -> "
            + ", ".join(str(Path(p)) for p in written)
        )

"""`mt3 transcribe`: audio files -> multi-instrument MIDI (and JSON notes, piano roll, audio,
sheet music)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mt3.cli import add_variant, command_parser
from mt3.outputs import formats_help

EPILOG = """\
examples:
  mt3 transcribe song.mp3 --checkpoint converted/mt3            -> ./song.mid
  mt3 transcribe a.wav b.flac -o out/ --format midi,png,wav --checkpoint converted/mt3
  mt3 transcribe piano.wav --checkpoint converted/ismir2021 --variant ismir2021
  mt3 transcribe band.wav --checkpoint ckpt --instruments piano,bass,drums
  mt3 transcribe take.wav --checkpoint ckpt --reference take.mid --format midi,png
  mt3 transcribe piano.wav --checkpoint runs/demo       (a training workdir: its latest step)
  mt3 transcribe song.wav --checkpoint ckpt --format midi,musicxml,score-pdf   (sheet music)

Any length of audio works: files are read in blocks and cut into 2.048 s segments (4.096 s for
ismir2021) that are decoded in batches. Output files are named after each input; -o is a folder, or
with one input a .mid path. An output never replaces an input; existing outputs are an error
unless --overwrite (replace them) or --skip-existing (resume a folder job). --format wav renders
the transcription with a General MIDI soundfont so you can listen to it beside the original.
--format musicxml writes a score (tempo, metre, key and parts estimated from the notes; see
mt3 notate --help); score-pdf, score-svg and score-png engrave its pages (png is the piano roll).
--dump-tokens writes the raw decoded ids per segment.
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
    add_variant(parser, "--model-config", default=None, help="the checkpoint's variant, checked")
    parser.add_argument("--batch-size", type=int, default=8, help="segments per device call")
    parser.add_argument("--format", default="midi", help=f"comma list of: {formats_help()}")
    parser.add_argument("--dump-tokens", help="write decoded ids per segment to this JSON file")
    parser.add_argument("--decode", default="mt3", choices=["mt3", "greedy", "beam"],
                        help="mt3: t5x beam search with 1 beam (MT3's); greedy; beam")  # fmt: skip
    parser.add_argument("--beams", type=int, default=4, help="beams for --decode beam")
    parser.add_argument(
        "--max-tokens", type=int, help="stop a segment after this many ids (default: the model's)"
    )
    parser.add_argument("--instruments", help="allowed instruments, e.g. piano,bass,drums or 0,33")
    parser.add_argument("--reference", help="reference MIDI drawn under the piano roll")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("--skip-existing", action="store_true",
                        help="keep existing outputs; transcribe only the other files")  # fmt: skip
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from mt3.infer import TranscribeOptions, output_bases, transcribe_files
    from mt3.model.decoding import DecodeOptions
    from mt3.outputs import parse_formats

    formats = parse_formats(args.format)
    bases = output_bases(args.audio, args.output)
    options = TranscribeOptions(
        batch_size=args.batch_size,
        decode=DecodeOptions(mode=args.decode, num_beams=args.beams, max_length=args.max_tokens),
        instruments=args.instruments,
    )
    for audio, written, result in transcribe_files(
        args.audio, bases, args.checkpoint, options, formats,
        variant=args.variant, dump_tokens=args.dump_tokens, reference=args.reference,
        overwrite=args.overwrite, skip_existing=args.skip_existing,
    ):  # fmt: skip
        if result is None:
            print(f"{audio}: skipped, its outputs exist ({', '.join(map(str, written))})")
            continue
        print(
            f"{audio}: {len(result.notes)} notes, {result.duration_seconds:.1f} s -> "
            + ", ".join(str(Path(p)) for p in written)
        )

"""`mt3 transcribe`: audio files -> multi-instrument MIDI (and JSON notes, piano roll, audio,
sheet music)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mt3.cli import add_context, add_variant, command_parser
from mt3.outputs import formats_help

EPILOG = """\
examples:
  mt3 transcribe song.mp3                  -> ./song.mid  (the model of `mt3 download mt3`)
  mt3 transcribe a.wav b.flac -o out/ --format midi,png,wav --checkpoint converted/mt3
  mt3 transcribe piano.wav --checkpoint converted/ismir2021 --variant ismir2021
  mt3 transcribe band.wav --checkpoint ckpt --instruments piano,bass,drums --context ties
  mt3 transcribe take.wav --checkpoint ckpt --reference take.mid --format midi,png
  mt3 transcribe piano.wav --checkpoint runs/demo       (a training workdir: its latest step)
  mt3 transcribe recordings/ -o midi/ --checkpoint ckpt   (every audio file below recordings/)
  mt3 transcribe song.wav --checkpoint ckpt --format midi,musicxml,score-pdf   (sheet music)
  mt3 transcribe --files corpus.txt -o out/ --shard 3/16 --skip-existing --checkpoint ckpt

Any length of audio works: files are read in blocks and cut into 2.048 s segments (4.096 s for
ismir2021). The segments of all inputs form one stream through the device: a batch row whose
segment ended takes the next one at once (--batch-size rows; by default 32 on a CPU, 256 on an
accelerator, fewer for short jobs). Output files are named after each input (a folder's files by
their path inside it); -o is a folder, or with one input a .mid path. For a corpus, --shard I/N
gives this process every N-th file from the I-th (I = 0..N-1), e.g. one per job of an array, and
--skip-existing resumes after preemption. An output never replaces an input; existing outputs
are an error unless --overwrite (replace them) or --skip-existing. --format wav renders the
transcription with a General MIDI soundfont so you can listen to it beside the original.
--format musicxml writes a score (tempo, metre, key and parts estimated from the notes; see
mt3 notate --help); score-pdf, score-svg and score-png engrave its pages (png is the piano roll).
--dump-tokens writes the raw decoded ids per segment. --context ties: better note ends, slower.
"""


def register(subparsers) -> None:
    parser = command_parser(subparsers, "transcribe", "audio -> MIDI", __doc__, EPILOG)
    parser.add_argument(
        "audio", nargs="*", help="wav, flac, ogg, mp3, ... files, or folders (searched recursively)"
    )
    parser.add_argument("--files", metavar="LIST", help="a text file of audio paths, one a line")
    parser.add_argument("--shard", metavar="I/N", help="transcribe every N-th input from the I-th")
    parser.add_argument("-o", "--output", default=".", help="output folder, or a .mid path")
    parser.add_argument(
        "--checkpoint",
        help="a model folder (convert-checkpoint) or a training run; default: the model that "
        "`mt3 download` put in the cache",
    )
    add_variant(parser, "--model-config", default=None, help="the checkpoint's variant, checked")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="segments decoded at once (default: from the device)")  # fmt: skip
    parser.add_argument("--format", default="midi", help=f"comma list of: {formats_help()}")
    parser.add_argument("--dump-tokens", help="write decoded ids per segment to this JSON file")
    parser.add_argument("--decode", default="mt3", choices=["mt3", "greedy", "beam"],
                        help="mt3: t5x beam search with 1 beam (MT3's); greedy; beam")  # fmt: skip
    parser.add_argument("--beams", type=int, default=4, help="beams for --decode beam")
    parser.add_argument("--max-tokens", type=int,
                        help="stop a segment after so many ids (default: the model's)")  # fmt: skip
    parser.add_argument("--instruments", help="allowed instruments, e.g. piano,bass,drums or 0,33")
    add_context(parser)
    parser.add_argument("--reference", help="reference MIDI drawn under the piano roll")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("--skip-existing", action="store_true",
                        help="keep existing outputs; transcribe only the other files")  # fmt: skip
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from mt3 import infer
    from mt3.model.decoding import DecodeOptions
    from mt3.outputs import parse_formats

    formats = parse_formats(args.format)
    inputs = infer.take_shard(infer.expand_inputs(args.audio, args.files), args.shard)
    paths = [path for path, _ in inputs]
    bases = infer.output_bases(paths, args.output, [name for _, name in inputs])
    options = infer.TranscribeOptions(
        batch_size=args.batch_size,
        decode=DecodeOptions(mode=args.decode, num_beams=args.beams, max_length=args.max_tokens),
        instruments=args.instruments,
        context=args.context,
    )
    for audio, written, result in infer.transcribe_files(
        paths, bases, args.checkpoint, options, formats,
        variant=args.variant, dump_tokens=args.dump_tokens, reference=args.reference,
        overwrite=args.overwrite, skip_existing=args.skip_existing,
    ):  # fmt: skip
        if result is None:
            tqdm.write(f"{audio}: skipped, its outputs exist ({', '.join(map(str, written))})")
            continue
        tqdm.write(
            f"{audio}: {len(result.notes)} notes, {result.duration_seconds:.1f} s -> "
            + ", ".join(str(Path(p)) for p in written)
        )

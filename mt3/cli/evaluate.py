"""`mt3 evaluate`: transcribe a prepared split and score it with MT3's metrics."""

from __future__ import annotations

import argparse

from mt3.cli import command_parser

EPILOG = """\
examples:
  mt3 evaluate --checkpoint runs/demo --data data/synth-band --split validation
  mt3 evaluate --checkpoint converted/mt3 --data data/slakh --split test --out ev/ --format png

--checkpoint is a training workdir (its latest checkpoint) or an mt3 checkpoint folder. Scores are
MT3's, per recording and their mean; --out writes scores.json and, with --format, each
transcription (the piano roll drawn over the reference).
"""


def register(subparsers) -> None:
    parser = command_parser(subparsers, "evaluate", "transcribe + score a split", __doc__, EPILOG)
    parser.add_argument("--checkpoint", required=True, help="training workdir or mt3 checkpoint")
    parser.add_argument("--data", required=True, help="a prepared dataset folder")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--out", help="folder for scores.json (and transcriptions)")
    parser.add_argument("--format", default="", help="with --out: comma list of midi, json, png")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--limit", type=int, help="only the first N recordings")
    parser.add_argument("--all", action="store_true", help="print every metric")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from mt3.evaluate import evaluate, format_table, load_any_model
    from mt3.infer import TranscribeOptions

    model = load_any_model(args.checkpoint)
    formats = [f for f in args.format.split(",") if f]
    mean, per_recording = evaluate(
        model, args.data, args.split, options=TranscribeOptions(batch_size=args.batch_size),
        out_dir=args.out, formats=formats, limit=args.limit,
    )  # fmt: skip
    print(f"{len(per_recording)} recordings of {args.data} ({args.split}); means:")
    print(format_table(mean, list(mean)) if args.all else format_table(mean))

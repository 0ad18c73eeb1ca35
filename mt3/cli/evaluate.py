"""`mt3 evaluate`: transcribe a prepared split and score it with MT3's metrics."""

from __future__ import annotations

import argparse

from mt3.cli import add_context, add_overwrite, add_variant, command_parser
from mt3.outputs import formats_help

EPILOG = """\
examples:
  mt3 evaluate --checkpoint runs/demo --data data/synth-band --split validation
  mt3 evaluate --checkpoint converted/mt3 --data data/slakh --split test --out ev/ --format png
  mt3 evaluate --checkpoint converted/mt3 --paper-table data

--checkpoint is a training workdir (its latest checkpoint) or an mt3 checkpoint folder. Scores are
MT3's, per recording and their mean; --out writes them as scores.json and scores.csv (a row per
recording, then the mean) and, with --format, each transcription (the piano roll drawn over the
reference). With --paper-table, --out gets OUT/<dataset>/scores.* and paper_table.md.
"""


def register(subparsers) -> None:
    parser = command_parser(subparsers, "evaluate", "transcribe + score a split", __doc__, EPILOG)
    parser.add_argument("--checkpoint", required=True, help="training workdir or mt3 checkpoint")
    add_variant(parser, default=None, help="the checkpoint's variant, checked")
    parser.add_argument("--data", help="a prepared dataset folder")
    parser.add_argument("--paper-table", metavar="DATA_ROOT",
                        help="MT3's Table 2/3 over DATA_ROOT/{maestro,cerberus4,...}")  # fmt: skip
    parser.add_argument("--split", help="default: validation (paper table: MT3's split per set)")
    parser.add_argument("--out", help="folder for scores.json, scores.csv (and transcriptions)")
    parser.add_argument("--format", default="", help=f"with --out: comma list of: {formats_help()}")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--limit", type=int, help="only the first N recordings")
    parser.add_argument("--all", action="store_true", help="print every metric")
    add_context(parser)
    add_overwrite(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from mt3.data.pipeline import SplitSource
    from mt3.errors import UsageError
    from mt3.evaluate import evaluate, format_table, paper_table
    from mt3.infer import TranscribeOptions, check_variant
    from mt3.model.store import load_model
    from mt3.outputs import parse_formats

    formats = parse_formats(args.format, allow_empty=True)
    if not (args.data or args.paper_table):
        raise UsageError("give --data DIR (a prepared dataset) or --paper-table DATA_ROOT")
    options = TranscribeOptions(batch_size=args.batch_size, context=args.context)
    if args.data:
        SplitSource(args.data, args.split or "validation")  # a missing split fails before work
    model = load_model(args.checkpoint)
    check_variant(model.config, args.variant, args.checkpoint)
    if args.paper_table:
        table = paper_table(
            model, args.paper_table, options=options, limit=args.limit, split=args.split,
            out_dir=args.out, overwrite=args.overwrite,
        )  # fmt: skip
        print(table)
        return
    mean, per_recording = evaluate(
        model, args.data, args.split or "validation", options=options,
        out_dir=args.out, formats=formats, limit=args.limit, overwrite=args.overwrite,
    )  # fmt: skip
    print(f"{len(per_recording)} recordings of {args.data} ({args.split or 'validation'}); means:")
    print(format_table(mean, list(mean)) if args.all else format_table(mean))

"""`mt3 score`: MT3's transcription metrics for reference vs. estimated notes."""

from __future__ import annotations

import argparse
import json

from mt3.cli import command_parser

EPILOG = """\
examples:
  mt3 score ref.mid est.mid                 headline metrics as a table
  mt3 score refs/ ests/ --all               folders matched by file name; every metric
  mt3 score ref.mid est.mid --json          {"metrics": {...}, "recordings": {...}}
  mt3 score refs/ ests/ --tracks cerberus4  add per-stem (bass/drums/guitar/piano) metrics

REF and EST are MIDI files (.mid/.midi) or notes JSON files, or two folders of them matched by
file name. The sustain pedal is applied to references only. Metric names are MT3's; a folder's
value is the mean over recordings, as MT3 reports datasets.
"""


def register(subparsers) -> None:
    parser = command_parser(
        subparsers,
        "score",
        "reference vs. estimate -> onset / offset / frame / multi-instrument F1",
        __doc__,
        EPILOG,
    )
    parser.add_argument("ref", help="reference MIDI/JSON file or folder")
    parser.add_argument("est", help="estimated MIDI/JSON file or folder")
    parser.add_argument("--json", action="store_true", help="print JSON for programs")
    parser.add_argument("--all", action="store_true", help="print every metric, not the headline")
    parser.add_argument("--tracks", choices=["cerberus4"], help="also score these stems")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from mt3.metrics import CERBERUS4_TRACKS, HEADLINE_METRICS, score_files

    tracks = CERBERUS4_TRACKS if args.tracks == "cerberus4" else None
    mean, per_recording = score_files(args.ref, args.est, track_specs=tracks)
    if args.json:
        print(json.dumps({"metrics": mean, "recordings": per_recording}, indent=1))
        return
    names = list(mean) if args.all else [n for n in HEADLINE_METRICS if n in mean]
    width = max(len(n) for n in names)
    if len(per_recording) > 1:
        print(f"{len(per_recording)} recordings; values are means over recordings")
    for name in names:
        print(f"{name:<{width}}  {mean[name]:.4f}")

"""`mt3 prepare`: raw dataset release (or your own audio + MIDI folder) -> record shards."""

from __future__ import annotations

import argparse

from mt3.cli import command_parser

EPILOG = """\
examples:
  mt3 prepare maestro --raw maestro-v3.0.0 --out data/maestro
  mt3 prepare guitarset --raw GuitarSet --out data/guitarset --audio mic
  mt3 prepare folder --raw my_recordings --out data/mine --split auto

DATASET is maestro (v1/v2/v3, json or csv metadata), guitarset (annotation/*.jams + mono audio)
or folder (audio files with same-named .mid files). The raw layout is checked first and every
missing file is named. Shards are written atomically; run the same command again to resume.
"""


def register(subparsers) -> None:
    parser = command_parser(subparsers, "prepare", "raw dataset -> record shards", __doc__, EPILOG)
    parser.add_argument("dataset", choices=["maestro", "guitarset", "folder"])
    parser.add_argument("--raw", required=True, help="the unpacked release (or your folder)")
    parser.add_argument("--out", required=True, help="output folder for shards + manifest.json")
    parser.add_argument("--workers", type=int, help="parallel processes (default: all cores)")
    parser.add_argument("--audio", default="mic", choices=["mic", "mix"], help="GuitarSet audio")
    parser.add_argument("--split", default="train", help="folder: train, validation, test, auto")
    parser.add_argument("--validation-fraction", type=float, default=0.1, help="folder, auto")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from mt3.data.prepare import prepare

    options = {"guitarset": {"audio": args.audio}, "maestro": {}}.get(
        args.dataset,
        {"split": args.split, "validation_fraction": args.validation_fraction},
    )
    manifest = prepare(args.dataset, args.raw, args.out, workers=args.workers, **options)
    for split, entry in manifest["splits"].items():
        print(
            f"{split}: {entry['recordings']} recordings, {entry['hours']:.2f} h, "
            f"{entry['notes']} notes, {len(entry['shards'])} shards"
        )

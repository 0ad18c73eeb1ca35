"""`mt3 prepare`: raw dataset release (or your own audio + MIDI folder) -> record shards."""

from __future__ import annotations

import argparse

from mt3.cli import command_parser
from mt3.data.datasets import DATASETS

EPILOG = """\
examples:
  mt3 prepare maestro --raw maestro-v3.0.0 --out data/maestro
  mt3 prepare slakh --raw slakh2100_flac_redux --out data/slakh
  mt3 prepare cerberus4 --raw slakh2100_flac_redux --out data/cerberus4
  mt3 prepare guitarset --raw GuitarSet --out data/guitarset --audio mic
  mt3 prepare musicnet --raw musicnet --out data/musicnet_em --labels em --em-dir musicnet_em
  mt3 prepare folder --raw my_recordings --out data/mine --split auto
  mt3 prepare synth-band --out data/synth-band --count 100 --seconds 30

DATASET is one of: maestro (v1/v2/v3, json or csv metadata); slakh (Slakh2100 orig, redux or
BabySlakh, flac or wav; stems kept for sub-mixes); cerberus4 (built from a Slakh2100 release);
guitarset (annotation/*.jams + mono audio); musicnet (csv labels, or MusicNetEM MIDI with
--labels em --em-dir DIR; MT3's split); urmp (piece folders with AuMix and Notes_*.txt); folder
(your audio files with same-named .mid files); synth-piano, synth-ensemble, synth-band,
synth-chorales (generated pieces or music21's Bach chorales rendered with a GM soundfont; no
--raw). The raw layout is checked first and every missing file is named. Shards are written
atomically; run the same command again to resume.
"""


def register(subparsers) -> None:
    parser = command_parser(subparsers, "prepare", "raw dataset -> record shards", __doc__, EPILOG)
    parser.add_argument("dataset", choices=DATASETS)
    parser.add_argument("--raw", help="the unpacked release (or your folder); not for synth-*")
    parser.add_argument("--out", required=True, help="output folder for shards + manifest.json")
    parser.add_argument("--workers", type=int, help="parallel processes (default: all cores)")
    parser.add_argument(
        "--skip-incomplete", action="store_true",
        help="leave out recordings with missing files (with a warning) instead of failing",
    )  # fmt: skip
    parser.add_argument("--audio", default="mic", choices=["mic", "mix"], help="GuitarSet audio")
    parser.add_argument(
        "--labels", default="csv", choices=["csv", "em"], help="MusicNet: csv, or MusicNetEM MIDI"
    )
    parser.add_argument("--em-dir", help="MusicNet: the unpacked musicnet_em folder")
    parser.add_argument("--split", default="train", help="folder: train, validation, test, auto")
    parser.add_argument("--validation-fraction", type=float, default=0.1, help="folder, auto")
    parser.add_argument("--count", type=int, default=100, help="synth-*: pieces to generate")
    parser.add_argument("--seconds", type=float, default=30.0, help="synth-*: piece length")
    parser.add_argument("--seed", type=int, default=0, help="synth-*: generator seed")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from mt3.data.datasets import DatasetLayoutError
    from mt3.data.prepare import prepare

    synthetic = args.dataset.startswith("synth-")
    if args.raw is None and not synthetic:
        raise DatasetLayoutError(f"{args.dataset} needs --raw, the folder of the raw release")

    options = {
        "guitarset": {"audio": args.audio},
        "musicnet": {"labels": args.labels, "em_dir": args.em_dir},
        "folder": {"split": args.split, "validation_fraction": args.validation_fraction},
    }.get(args.dataset, {})
    if synthetic:
        options = {"count": args.count, "seconds": args.seconds, "seed": args.seed}
    if not synthetic:
        options["skip_incomplete"] = args.skip_incomplete
    manifest = prepare(args.dataset, args.raw, args.out, workers=args.workers, **options)
    for split, entry in manifest["splits"].items():
        print(
            f"{split}: {entry['recordings']} recordings, {entry['hours']:.2f} h, "
            f"{entry['notes']} notes, {len(entry['shards'])} shards"
        )

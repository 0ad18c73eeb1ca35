"""`mt3 prepare`: raw dataset release (or your own audio + MIDI folder) -> record shards."""

from __future__ import annotations

import argparse

from mt3.cli import add_overwrite, command_parser

EPILOG = """\
examples:
  mt3 prepare maestro --raw maestro-v3.0.0 --out data/maestro
  mt3 prepare slakh --raw slakh2100_flac_redux --out data/slakh
  mt3 prepare cerberus4 --raw slakh2100_flac_redux --out data/cerberus4
  mt3 prepare guitarset --raw GuitarSet --out data/guitarset --audio mic
  mt3 prepare musicnet --raw musicnet --out data/musicnet_em --labels em --em-dir musicnet_em
  mt3 prepare folder --raw my_recordings --out data/mine --split auto
  mt3 prepare synth-band --out data/synth-band --count 100 --seconds 30

datasets:
{datasets}

The raw layout is checked first and every missing file is named. Shards are written atomically;
run the same command again to resume. A folder prepared from other inputs or options is an error
(--overwrite rebuilds it); the manifest lists the shards and a fingerprint of what they were
built from.
"""


def register(subparsers) -> None:
    from mt3.data.datasets import registry

    datasets = registry()
    listing = "\n".join(f"  {d.name:<15} {d.summary}" for d in datasets.values())
    parser = command_parser(subparsers, "prepare", "raw dataset -> record shards", __doc__,
                            EPILOG.format(datasets=listing))  # fmt: skip
    parser.add_argument("dataset", choices=datasets, metavar="DATASET", help="see below")
    parser.add_argument("--raw", help="the unpacked release (or your folder); not for synth-*")
    parser.add_argument("--out", required=True, help="output folder for the shards and manifest")
    parser.add_argument("--workers", type=int, help="parallel processes (default: all cores)")
    add_overwrite(parser)
    options = {o.flag: o for d in datasets.values() for o in d.options}  # shared flags once
    for flag, option in options.items():
        if option.type is bool:
            parser.add_argument(flag, action="store_true", default=None, help=option.help)
        else:
            parser.add_argument(flag, type=option.type, choices=option.choices,
                                help=f"{option.help} (default: {option.default})")  # fmt: skip
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from mt3.data.datasets import get_dataset, registry
    from mt3.data.prepare import prepare
    from mt3.errors import UsageError

    dataset = get_dataset(args.dataset)
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    if args.raw is None and dataset.needs_raw:
        raise UsageError(f"{dataset.name} needs --raw, the folder of the raw release")
    taken = {o.name for o in dataset.options}
    for option in {o.name: o for d in registry().values() for o in d.options}.values():
        if getattr(args, option.name) is not None and option.name not in taken:
            raise UsageError(f"{option.flag} is not an option of {dataset.name}")
    options = {
        o.name: o.default if getattr(args, o.name) is None else getattr(args, o.name)
        for o in dataset.options
    }
    manifest = prepare(dataset.name, args.raw, args.out, workers=args.workers,
                       overwrite=args.overwrite, **options)  # fmt: skip
    for split, entry in manifest["splits"].items():
        print(
            f"{split}: {entry['recordings']} recordings, {entry['hours']:.2f} h, "
            f"{entry['notes']} notes, {len(entry['shards'])} shards"
        )

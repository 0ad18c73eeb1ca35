"""`mt3 train`: train (or resume) a model with gin-configured TrainConfig."""

from __future__ import annotations

import argparse

from mt3.cli import command_parser

EPILOG = """\
examples:
  mt3 train --gin_file gin/demo.gin --workdir runs/demo
  mt3 train --gin_file gin/tiny.gin --gin_param 'TrainConfig.steps = 200' --workdir runs/t

gin files bind TrainConfig fields (see mt3/train/config.py); --gin_param overrides them. Running
the same command again resumes from the workdir's latest checkpoint. metrics.jsonl and
config.json are written to the workdir.
"""


def register(subparsers) -> None:
    parser = command_parser(subparsers, "train", "train or resume a model", __doc__, EPILOG)
    parser.add_argument("--gin_file", action="append", default=[], help="gin config (repeatable)")
    parser.add_argument("--gin_param", action="append", default=[], help="gin binding override")
    parser.add_argument("--workdir", required=True, help="checkpoints, metrics and config go here")
    parser.add_argument("--plot", action="store_true", help="also write WORKDIR/curves.png")
    parser.add_argument(
        "--distributed", action="store_true", help="multi-host: jax.distributed.initialize()"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from mt3.train.config import load_config
    from mt3.train.train import train

    if args.distributed:
        import jax

        jax.distributed.initialize()
    last = train(load_config(args.gin_file, args.gin_param), args.workdir)
    if last:
        print(f"{args.workdir}: done at step {last['step']}")
    if args.plot:
        from mt3.train.train import plot_curves

        print(f"learning curves: {plot_curves(args.workdir)}")

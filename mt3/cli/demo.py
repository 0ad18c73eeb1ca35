"""`mt3 demo`: generate data, train the tiny network, evaluate it and transcribe a held-out piece.

The whole project in one command on a CPU, in about 8 minutes on 2 cores (gin/demo.gin says what
it trains and how long).
"""

from __future__ import annotations

import argparse

from mt3.cli import command_parser

EPILOG = """\
examples:
  mt3 demo
  mt3 demo --workdir runs/demo4x --gin_param 'TrainConfig.steps = 14400'   (4x the budget)
  mt3 transcribe my_piano.wav --checkpoint runs/demo --format midi,png

Stages: (1) generate the synthetic datasets of gin/demo.gin under --data if missing, (2) train
(or resume) in --workdir, (3) evaluate on their validation splits (WORKDIR/eval/*/scores.json),
(4) transcribe a held-out test piece to WORKDIR/example/: its audio (.wav), the transcription
(.mid), the truth (.reference.mid) and a piano roll over the truth (.png). WORKDIR/demo.json
keeps the scores and how long each stage took. Running it again resumes.
"""


def register(subparsers) -> None:
    parser = command_parser(subparsers, "demo", "train + evaluate a demo model", __doc__, EPILOG)
    parser.add_argument("--workdir", default="runs/demo", help="default: runs/demo")
    parser.add_argument("--data", default=None, help="data root (default: gin/demo.gin's, data)")
    parser.add_argument("--gin_file", action="append", default=[], help="instead of demo.gin")
    parser.add_argument("--gin_param", action="append", default=[], help="gin binding override")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from mt3.demo import run_demo

    run_demo(args.workdir, args.data, args.gin_file, args.gin_param)

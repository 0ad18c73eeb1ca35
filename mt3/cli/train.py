"""`mt3 train`: train (or resume) a model; gin binds ModelConfig, DataConfig and TrainConfig."""

from __future__ import annotations

import argparse

from mt3.cli import add_variant, command_parser

EPILOG = """\
examples:
  mt3 train --gin_file gin/demo.gin --workdir runs/demo
  mt3 train --gin_file gin/tiny.gin --gin_param 'TrainConfig.steps = 200' --workdir runs/t
  mt3 train --gin_file gin/tiny.gin --gin_param 'DataConfig.temperature = 3.0' --workdir runs/t3
  mt3 train --gin_file runs/t/config.gin --workdir runs/t-again     (the same configuration)
  mt3 train --gin_file gin/mt3.gin --workdir /shared/runs/mt3 --distributed   (SLURM, TPU pod)
  mt3 train ... --coordinator 10.0.0.1:8476 --num-processes 2 --process-id 0  (and 1 elsewhere)

gin files bind the fields of ModelConfig, DataConfig and TrainConfig (mt3/config.py);
--gin_param overrides them, --variant is TrainConfig.variant. Running the same command again
resumes from the workdir's latest checkpoint. The workdir gets metrics.jsonl, tensorboard/, and
the resolved configuration as config.json and config.gin. Multi-process runs: docs/training.md.
"""


def register(subparsers) -> None:
    parser = command_parser(subparsers, "train", "train or resume a model", __doc__, EPILOG)
    parser.add_argument("--gin_file", action="append", default=[], help="gin config (repeatable)")
    parser.add_argument("--gin_param", action="append", default=[], help="gin binding override")
    add_variant(parser, default=None, help="the network to train (TrainConfig.variant)")
    parser.add_argument("--workdir", required=True, help="checkpoints, metrics and config go here")
    parser.add_argument("--plot", action="store_true", help="also write WORKDIR/curves.png")
    parser.add_argument("--distributed", action="store_true",
                        help="one of several processes: jax.distributed.initialize()")  # fmt: skip
    parser.add_argument("--coordinator", metavar="HOST:PORT",
                        help="process 0's address (implies --distributed)")  # fmt: skip
    parser.add_argument("--num-processes", type=int, metavar="N", help="processes in the run")
    parser.add_argument("--process-id", type=int, metavar="I", help="this process (0..N-1)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from mt3.config import load_config
    from mt3.train import distributed
    from mt3.train.train import train

    explicit = (args.coordinator, args.num_processes, args.process_id)
    distributed.check_options(*explicit)
    bindings = list(args.gin_param)
    if args.variant:
        bindings.append(f"TrainConfig.variant = '{args.variant}'")
    config = load_config(args.gin_file, bindings)
    if args.distributed or args.coordinator:
        distributed.initialize(*explicit)
    last = train(config, args.workdir)
    if "stopped_by" in last:  # preempted: not done; schedulers see 128 + the signal number
        raise SystemExit(128 + last["stopped_by"])
    if not distributed.is_primary():  # process 0 reports for the run
        return
    if last:
        print(f"{args.workdir}: done at step {last['step']}")
    if args.plot:
        from mt3.train.train import plot_curves

        print(f"learning curves: {plot_curves(args.workdir)}")

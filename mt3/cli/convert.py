"""`mt3 convert-checkpoint`: Magenta's T5X checkpoints -> our format (config + orbax params)."""

from __future__ import annotations

import argparse

from mt3.cli import add_variant, command_parser

EPILOG = """\
examples:
  gsutil -m cp -r gs://mt3/checkpoints/mt3 .        (once, on a machine with network access)
  mt3 convert-checkpoint mt3 converted/mt3 --variant mt3
  mt3 convert-checkpoint ismir2021 converted/ismir2021 --variant ismir2021

Layer counts and widths are read from the checkpoint, so reduced or larger (ISMIR 2022 "base")
checkpoints convert too; the head count comes from --variant or --num-heads. Every array is
checked against the network; missing, extra or mis-shaped arrays are named.
"""


def register(subparsers) -> None:
    parser = command_parser(
        subparsers,
        "convert-checkpoint",
        "Magenta's T5X checkpoint -> mt3 checkpoint",
        __doc__,
        EPILOG,
    )
    parser.add_argument("t5x_dir", help="folder holding the T5X 'checkpoint' msgpack + zarr arrays")
    parser.add_argument("out_dir", help="new folder for the converted checkpoint")
    add_variant(parser, "--model-config", help="the checkpoint's variant")
    parser.add_argument("--num-heads", type=int, help="attention heads, if not the variant's")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from mt3.model.convert import convert_checkpoint

    config = convert_checkpoint(args.t5x_dir, args.out_dir, args.variant, num_heads=args.num_heads)
    print(
        f"{args.out_dir}: {config.name} network, {config.num_encoder_layers}+"
        f"{config.num_decoder_layers} layers, d_model {config.emb_dim}, {config.num_heads} heads, "
        f"vocab {config.vocab} ({config.vocab_size} rows), {config.num_params():,} parameters"
    )

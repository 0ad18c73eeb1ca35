"""Command-line interface: thin modules that parse arguments, call the library and print."""

from __future__ import annotations

import argparse


def command_parser(subparsers, name: str, summary: str, doc: str, epilog: str):
    """A subcommand parser whose description is the module docstring's text after ``: ``."""
    return subparsers.add_parser(
        name,
        help=summary,
        description=doc.split(": ", 1)[1],
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_overwrite(parser) -> None:
    """``--overwrite``: outputs that exist are an error unless this is given."""
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def add_variant(parser, *aliases: str, default: str | None = "mt3", help: str = "") -> None:
    """``--variant NAME`` (mt3, ismir2021, base, tiny): every command names the model variant,
    and with it the vocabulary and segment length, with this flag. ``aliases`` are the flag's
    older names (--vocab, --config, --model-config), still accepted."""
    from mt3.config import VARIANTS

    parser.add_argument(
        "--variant", *aliases, dest="variant", default=default, choices=VARIANTS, metavar="NAME",
        help=f"{help} ({', '.join(VARIANTS)}; default: {default or 'none'})",
    )  # fmt: skip


def add_context(parser) -> None:
    """``--context``: how each segment sees the one before it (TranscribeOptions.context)."""
    parser.add_argument(
        "--context", default="none", choices=["none", "ties"],
        help="none: each 2 s segment alone, exactly as MT3; ties: each segment opens with the "
        "notes still sounding at the end of the previous one (docs/mt3.md, Segment context)",
    )  # fmt: skip

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

"""The ``mt3`` console script: one subcommand per module in this package."""

from __future__ import annotations

import argparse
import os
import sys

from mt3.allocator import use_tcmalloc
from mt3.cli import (
    convert,
    demo,
    download,
    evaluate,
    features,
    notate,
    prepare,
    score,
    serve,
    tokens,
    train,
    transcribe,
)  # fmt: skip
from mt3.errors import Mt3Error

COMMANDS = (
    transcribe, notate, download, serve, demo, convert, prepare, train, evaluate, tokens, features,
    score,
)  # fmt: skip

DESCRIPTION = """\
mt3: multi-instrument music transcription (MT3) in JAX.

Commands:
  transcribe          audio files -> multi-instrument MIDI (+ JSON, piano roll, audio, score)
  notate              MIDI or notes JSON -> sheet music (MusicXML, PDF/SVG/PNG pages)
  download            Magenta's released model (mt3, ismir2021) -> verified, in the cache
  serve               a local web app: upload or record audio, see and download the notes
  demo                generate data, train a tiny model, evaluate it, transcribe (8 min, CPU)
  convert-checkpoint  Magenta's released T5X checkpoints -> mt3 checkpoints
  prepare             raw dataset release or your audio + MIDI folder -> record shards
  train               train (or resume) a model on prepared data, configured with gin
  evaluate            transcribe a prepared split and score it with MT3's metrics
  tokens              the per-segment training targets MT3 builds from a MIDI file
  features            the log-mel encoder inputs MT3 computes from an audio file
  score               MT3's transcription metrics for reference vs. estimated MIDI

Run `mt3 COMMAND --help` for a command's options and examples.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mt3", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # the `mt3` command, not a call from Python
        use_tcmalloc()  # re-runs the command with tcmalloc, if installed (mt3.allocator)
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except BrokenPipeError:  # e.g. `mt3 tokens x.mid | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (Mt3Error, OSError) as error:  # expected failures: one line, exit status 2
        message = str(error)
        if not isinstance(error, Mt3Error) and error.filename:  # an OSError: name the file
            message = f"{error.filename}: {error.strerror}"
        print(f"mt3 {args.command}: error: {message}", file=sys.stderr)
        store = sys.modules.get("mt3.model.store")
        if argv is None and getattr(store, "abandoned_reads", False):
            sys.stdout.flush()  # orbax's abandoned reads would print tracebacks until exit
            sys.stderr.flush()
            os._exit(2)
        return 2
    except KeyboardInterrupt:
        print(f"mt3 {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

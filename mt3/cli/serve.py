"""`mt3 serve`: a local web page that transcribes audio you upload or record."""

from __future__ import annotations

import argparse

from mt3.cli import add_variant, command_parser

EPILOG = """\
examples:
  mt3 serve --checkpoint converted/mt3                  -> open http://127.0.0.1:7860
  mt3 serve --checkpoint converted/mt3 --port 8080 --max-upload-mb 20
  mt3 serve --checkpoint runs/demo          (a training workdir: its latest step)

The model is loaded and compiled once at start-up, then serves every request; requests queue and
run one at a time. Each instrument set you tick is compiled on first use (a few seconds to a few
tens of seconds). The page shows the piano roll, plays the original beside the transcription
rendered with a General MIDI soundfont, and offers MIDI, JSON, the piano roll, the rendered audio
and any other --format of `mt3 transcribe` for download. Uploads and results live in a temporary
folder that is removed when the server stops (Ctrl-C). It listens on 127.0.0.1 (this machine
only) unless --host says otherwise. Needs the `serve` extra (gradio): bash scripts/setup.sh.
"""


def register(subparsers) -> None:
    from mt3.app import DEFAULT_HOST, DEFAULT_MAX_UPLOAD_MB, DEFAULT_PORT

    parser = command_parser(subparsers, "serve", "a local transcription web app", __doc__, EPILOG)
    parser.add_argument(
        "--checkpoint", help="an mt3 checkpoint folder (see convert-checkpoint) or a training run"
    )
    add_variant(parser, default=None, help="the checkpoint's variant, checked")
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})"
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on")
    parser.add_argument(
        "--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB,
        help=f"largest audio file accepted, in MB (default {DEFAULT_MAX_UPLOAD_MB:g})",
    )  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=8, help="segments per device call")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from mt3.app import ServeOptions, serve

    options = ServeOptions(args.host, args.port, args.max_upload_mb, args.batch_size)
    serve(args.checkpoint, options, variant=args.variant)

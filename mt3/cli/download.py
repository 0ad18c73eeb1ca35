"""`mt3 download`: Magenta's released checkpoint -> verified, converted, in the user's cache."""

from __future__ import annotations

import argparse

from mt3.cli import command_parser

EPILOG = """\
examples:
  mt3 download mt3                     the multi-instrument model (172 MB, HTTPS, no account)
  mt3 download ismir2021               the piano model of the ISMIR 2021 paper
  mt3 download --from checkpoints/mt3  a copy already on disk (e.g. from gsutil cp -r)
  mt3 download --list                  what is in the cache
  mt3 transcribe song.mp3              afterwards: no --checkpoint needed

Files come from the public bucket gs://mt3/checkpoints/<name>/ over plain HTTPS
(https://storage.googleapis.com/mt3/checkpoints/<name>/). Every mt3 file is checked against the
sha256 shipped with this package; for ismir2021 no hashes are published, so sizes, the server's
MD5 and the checkpoint's structure are checked. The model is converted into
~/.cache/mt3/models/<name> (MT3_HOME moves the cache) and appears there complete or not at all.
An interrupted download resumes when the same command is run again.
"""


def register(subparsers) -> None:
    parser = command_parser(
        subparsers, "download", "the released mt3 / ismir2021 model -> user cache", __doc__, EPILOG
    )
    parser.add_argument(
        "name", nargs="?", choices=["mt3", "ismir2021"],
        help="release (default: mt3; with --from, the one the folder holds)",
    )  # fmt: skip
    parser.add_argument(
        "--from", dest="source", metavar="DIR",
        help="a folder already holding the release, instead of the network",
    )  # fmt: skip
    parser.add_argument(
        "--url", metavar="URL", help="a mirror with the bucket's layout (URL/<name>/checkpoint)"
    )
    parser.add_argument("--overwrite", action="store_true", help="fetch again, replacing it")
    parser.add_argument("--list", action="store_true", help="show the models in the cache")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from mt3 import hub

    if args.list:
        for name, folder in hub.cached_models().items():
            print(f"{name:<10} {folder or f'not downloaded (mt3 download {name})'}")
        return
    folder = hub.download(
        args.name, source=args.source, base_url=args.url or hub.BASE_URL, overwrite=args.overwrite
    )
    print(f"ready: {folder}; `mt3 transcribe AUDIO` uses it without --checkpoint")

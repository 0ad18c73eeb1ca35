"""`mt3 notate`: MIDI or notes JSON files -> sheet music (MusicXML, engraved PDF/SVG/PNG pages)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mt3.cli import add_overwrite, command_parser

EPILOG = """\
examples:
  mt3 notate take.mid                              -> ./take.musicxml
  mt3 notate take.mid --format musicxml,pdf,png    -> take.musicxml, take.score.pdf, .score.png
  mt3 notate song.json -o scores/ --format pdf     a transcription's notes JSON
  mt3 notate sequenced.mid --grid midi             use the file's tempo map and time signature
  mt3 transcribe song.wav --checkpoint ckpt --format midi,musicxml,score-pdf   (in one go)

The beat grid, tempo (with tempo changes), time signature (2/4, 3/4, 4/4, 6/8) and key are
estimated from the notes; notes are quantised to sixteenths or triplets, one part per instrument.
--grid auto (default) keeps a MIDI file's own tempo map when its notes sit on it (a sequencer's
file) and estimates one otherwise (a transcription). Pages (pdf, svg, png: the score-* formats of
mt3 transcribe) are engraved with verovio, from the optional notation extra
(pip install 'mt3-jax[notation]'); a multi-page SVG or PNG has the pages one under the other.
"""


def register(subparsers) -> None:
    parser = command_parser(subparsers, "notate", "MIDI -> sheet music", __doc__, EPILOG)
    parser.add_argument("files", nargs="+", help="MIDI (.mid) or notes JSON files")
    parser.add_argument("-o", "--output", default=".", help="output folder (default: .)")
    parser.add_argument(
        "--format", default="musicxml", help="comma list of: musicxml, pdf, svg, png"
    )
    parser.add_argument("--grid", default="auto", choices=["auto", "midi", "estimate"],
                        help="where the beat grid comes from (default: auto)")  # fmt: skip
    parser.add_argument("--title", help="score title (default: the file name)")
    add_overwrite(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from mt3.notation import notate_file

    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    for path in args.files:
        base = Path(args.output) / Path(path).stem
        sheet, written = notate_file(
            path, base, formats, grid=args.grid, title=args.title, overwrite=args.overwrite
        )
        bpm = ", ".join(f"{bpm:.0f}" for _, bpm in sheet.grid.tempos)
        print(
            f"{path}: {sheet.grid.metre.signature}, {bpm} bpm, {sheet.key.name}, "
            f"{len(sheet.score.parts)} staves -> " + ", ".join(map(str, written))
        )

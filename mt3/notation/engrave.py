"""MusicXML -> engraved pages: SVG from verovio, PNG and PDF from those SVGs through CairoSVG.

Both libraries are the optional ``notation`` extra (``pip install 'mt3-jax[notation]'``; CairoSVG
also needs the system cairo library, ``apt-get install libcairo2``). Pages are A4 portrait. A
multi-page score is one file in every format: a PDF with one page per page, an SVG or a PNG with
the pages one under the other.
"""

from __future__ import annotations

import io
import os
import re

from mt3.atomic import atomic_write_bytes, atomic_write_text
from mt3.errors import Mt3Error

PAGE_WIDTH, PAGE_HEIGHT = 2100, 2970  # verovio units (tenths of a millimetre): A4
SCALE_PERCENT = 40  # verovio's staff size scale
PNG_DPI = 110  # PNG pages are rasterised at this resolution
PAGE_GAP = 20  # pixels between stacked SVG/PNG pages
PAGE_FORMATS = ("svg", "png", "pdf")
PROGRESS_PAGES = 4  # a progress bar when rasterising more pages than this


class NotationError(Mt3Error, ValueError):
    """Notation that cannot be written: a missing optional dependency or an unknown format."""


def _require(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:  # OSError: CairoSVG without the system cairo library
        raise NotationError(
            f"engraving score pages needs {module} ({error}); install the notation extra: "
            "pip install 'mt3-jax[notation]' (and apt-get install libcairo2 for PNG/PDF)"
        ) from None
    except OSError as error:
        raise NotationError(
            f"{module} cannot load the cairo library ({error}); apt-get install libcairo2"
        ) from None


def musicxml_to_svg_pages(musicxml: str) -> list[str]:
    """One SVG document per engraved page."""
    verovio = _require("verovio")
    verovio.enableLog(verovio.LOG_ERROR)  # not its notes on how it read the MusicXML
    toolkit = verovio.toolkit()
    toolkit.setOptions({
        "pageWidth": PAGE_WIDTH, "pageHeight": PAGE_HEIGHT, "scale": SCALE_PERCENT,
        "adjustPageHeight": False, "footer": "none", "header": "auto", "breaks": "auto",
        "pageMarginLeft": 80, "pageMarginRight": 80, "pageMarginTop": 60, "pageMarginBottom": 60,
    })  # fmt: skip
    if not toolkit.loadData(musicxml):
        raise NotationError("verovio could not read the MusicXML it was given")
    return [_text_notes(toolkit.renderToSVG(p)) for p in range(1, toolkit.getPageCount() + 1)]


# Verovio writes the note of a tempo mark as a character of its music font, which an SVG
# rasteriser does not have: those characters become the Unicode notes of a common text font.
_TEXT_NOTES = {
    "\ueca5": "\u2669",
    "\ueca6": "\u2669",
    "\ueca7": "\u266a",
    "\ueca8": "\u266a",
    "\ue1d5": "\u2669",
    "\ue1d7": "\u266a",
    "\uecb7": ".",
    "\ue1e7": ".",
    " ": "",
}


def _text_notes(svg: str) -> str:
    def replace(match):
        size = float(match.group(1)) * 0.75
        text = "".join(_TEXT_NOTES.get(c, c) for c in match.group(2))
        return f'<tspan font-family="DejaVu Sans" font-size="{size:g}px">{text}</tspan>'

    return re.sub(r'<tspan font-family="Leipzig" font-size="([\d.]+)px">([^<]*)</tspan>', replace,
                  svg)  # fmt: skip


def _size(svg: str) -> tuple[float, float]:
    match = re.search(r'<svg[^>]*?width="([\d.]+)px"[^>]*?height="([\d.]+)px"', svg)
    return (float(match.group(1)), float(match.group(2))) if match else (PAGE_WIDTH, PAGE_HEIGHT)


def _white(svg: str) -> str:
    """A white background, so pages read on dark viewers and PNG has no transparency."""
    return re.sub(
        r"(<svg[^>]*>)", r'\1<rect width="100%" height="100%" fill="white"/>', svg, count=1
    )


def stack_svg(pages: list[str]) -> str:
    """Several SVG pages as one SVG document, one under the other."""
    if len(pages) == 1:
        return _white(pages[0])
    sizes = [_size(p) for p in pages]
    width = max(w for w, _ in sizes)
    height = sum(h for _, h in sizes) + PAGE_GAP * (len(pages) - 1)
    body, y = [], 0.0
    for page, (_, h) in zip(pages, sizes):
        inner = re.sub(r"^<\?xml[^>]*>\s*", "", _white(page).strip())
        body.append(re.sub(r"<svg ", f'<svg y="{y:g}" ', inner, count=1))
        y += h + PAGE_GAP
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'width="{width:g}px" height="{height:g}px" viewBox="0 0 {width:g} {height:g}">'
        f'<rect width="100%" height="100%" fill="#d0d0d0"/>{"".join(body)}</svg>\n'
    )


def _pages(pages: list[str], what: str):
    from tqdm import tqdm

    return tqdm(pages, desc=f"score {what}", unit="page", disable=len(pages) <= PROGRESS_PAGES)


def svg_pages_to_png(pages: list[str]) -> bytes:
    """The pages rasterised at PNG_DPI, one under the other, as PNG bytes."""
    cairosvg = _require("cairosvg")
    from PIL import Image

    images = [
        Image.open(
            io.BytesIO(
                cairosvg.svg2png(bytestring=_white(p).encode(), dpi=PNG_DPI, scale=PNG_DPI / 96)
            )
        )  # fmt: skip
        for p in pages
    ]
    width = max(i.width for i in images)
    gap = PAGE_GAP * (len(images) > 1)
    sheet = Image.new("RGB", (width, sum(i.height for i in images) + gap * (len(images) - 1)),
                      (208, 208, 208))  # fmt: skip
    y = 0
    for image in images:
        sheet.paste(image.convert("RGB"), (0, y))
        y += image.height + gap
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def svg_pages_to_pdf(pages: list[str]) -> bytes:
    """A PDF with one vector page per SVG page."""
    cairosvg = _require("cairosvg")
    import cairocffi

    buffer = io.BytesIO()
    shared = cairocffi.PDFSurface(buffer, 1, 1)

    class _Page(cairosvg.surface.PDFSurface):
        # Draw every page on the one shared PDF surface instead of a new file per page.
        def _create_surface(self, width, height):
            shared.set_size(width, height)
            return shared, width, height

    for page in _pages(pages, "PDF"):
        tree = cairosvg.parser.Tree(bytestring=_white(page).encode())
        drawn = _Page(tree, None, 96)
        drawn.context.show_page()
    shared.finish()
    return buffer.getvalue()


def write_pages(musicxml: str, path: str | os.PathLike, fmt: str) -> None:
    """Engrave ``musicxml`` and write it as ``fmt`` ('svg', 'png' or 'pdf') to ``path``."""
    if fmt not in PAGE_FORMATS:
        raise NotationError(f"score pages can be {', '.join(PAGE_FORMATS)}; got {fmt!r}")
    pages = musicxml_to_svg_pages(musicxml)
    if fmt == "svg":
        atomic_write_text(path, stack_svg(pages))
    elif fmt == "png":
        atomic_write_bytes(path, svg_pages_to_png(pages))
    else:
        atomic_write_bytes(path, svg_pages_to_pdf(pages))

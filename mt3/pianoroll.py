"""Piano-roll pictures of notes: one colour per instrument, drums as ticks, a reference overlay."""

from __future__ import annotations

import os

import numpy as np

from mt3.notes import Notes

SECONDS_PER_INCH = 6.0
MAX_WIDTH_INCHES = 60.0


def _instrument_name(program: int, is_drum: bool) -> str:
    if is_drum:
        return "Drums"
    import pretty_midi

    return f"{program}: {pretty_midi.program_to_instrument_name(program)}"


def plot_piano_roll(
    notes: Notes,
    path: str | os.PathLike,
    *,
    reference: Notes | None = None,
    title: str = "",
) -> None:
    """Save a PNG: estimated notes as filled bars (colour = program), drums as ticks, and the
    reference (if given) as black outlines underneath."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle

    from mt3.atomic import atomic_path

    end = max(notes.end_time, reference.end_time if reference is not None else 0.0, 1.0)
    width = min(max(8.0, end / SECONDS_PER_INCH), MAX_WIDTH_INCHES)
    figure, axes = plt.subplots(figsize=(width, 5.0), dpi=100)
    if reference is not None and len(reference):
        outlines = [
            Rectangle((s, p - 0.5), max(e - s, 0.01), 1.0)
            for s, e, p in zip(reference.start, reference.end, reference.pitch)
        ]
        axes.add_collection(
            PatchCollection(outlines, facecolor="none", edgecolor="black", linewidth=0.6)
        )
    colours = plt.get_cmap("tab20")
    keys = sorted(set(zip(notes.is_drum.tolist(), notes.program.tolist())))
    handles = []
    for index, (is_drum, program) in enumerate(keys):
        group = notes.select((notes.is_drum == is_drum) & (notes.program == program))
        colour = colours(index % 20)
        if is_drum:
            handle = axes.scatter(group.start, group.pitch, marker="|", s=30, color=colour)
        else:
            bars = [
                Rectangle((s, p - 0.4), max(e - s, 0.01), 0.8)
                for s, e, p in zip(group.start, group.end, group.pitch)
            ]
            axes.add_collection(PatchCollection(bars, facecolor=colour, alpha=0.8))
            handle = Rectangle((0, 0), 1, 1, facecolor=colour)
        handles.append((handle, _instrument_name(program, is_drum)))
    pitches = np.concatenate(
        [notes.pitch, reference.pitch if reference is not None else np.zeros(0, np.int16)]
    )
    low, high = (int(pitches.min()) - 2, int(pitches.max()) + 2) if pitches.size else (20, 108)
    axes.set_xlim(0, end)
    axes.set_ylim(low, high)
    axes.set_xlabel("time (s)")
    axes.set_ylabel("MIDI pitch")
    if reference is not None:
        handles.append((Rectangle((0, 0), 1, 1, facecolor="none", edgecolor="black"), "reference"))
    if handles:
        axes.legend(*zip(*handles), loc="upper right", fontsize=7, ncols=2)
    axes.set_title(title or f"{len(notes)} notes")
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    plt.close(figure)

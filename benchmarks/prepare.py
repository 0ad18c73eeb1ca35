"""`mt3 prepare` throughput: audio seconds prepared per wall second, per worker.

    python benchmarks/prepare.py [--tracks 4] [--seconds 240] [--workers 1 2]

Builds a Slakh2100 (redux, FLAC) tree of ``--tracks`` full-length tracks from the real sample
track in ../shared/dataset_samples (its 10 stems, 44.1 kHz, tiled to ``--seconds``, the length
of its MIDI files; the release averages 249 s a track), then times `mt3 prepare slakh` on it
with each worker count and prints audio seconds per wall second (per worker, and in all) and
what the full release (145 h of mixes) takes at that rate. Every track second is 10 stems to
decode, resample to 16 kHz and store, which makes Slakh the slowest dataset to prepare per
audio second; MAESTRO's stereo 44.1/48 kHz files are one stream each.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

from mt3.data.prepare import prepare

SAMPLE = Path(__file__).resolve().parents[2] / "shared/dataset_samples/slakh/slakh2100_flac_redux"
SLAKH_HOURS = 145.0  # the Slakh2100 release's mixes (docs/training.md)


def build_tree(root: Path, tracks: int, seconds: float) -> Path:
    track = SAMPLE / "train" / "Track00001"
    for index in range(tracks):
        folder = root / "train" / f"Track{index + 1:05d}"
        shutil.copytree(track, folder, ignore=shutil.ignore_patterns("*.flac"))
        for stem in sorted(track.glob("stems/*.flac")) + [track / "mix.flac"]:
            audio, rate = soundfile.read(stem, dtype="int16")
            tiled = np.resize(audio, int(seconds * rate))  # repeats the 2 s excerpt
            soundfile.write(folder / stem.relative_to(track), tiled, rate)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=240.0)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        raw = build_tree(Path(folder) / "raw", args.tracks, args.seconds)
        audio_seconds = args.tracks * args.seconds
        print(f"{args.tracks} Slakh tracks of {args.seconds:.0f} s (10 stems each), "
              f"{os.cpu_count()} CPUs")  # fmt: skip
        print("| workers | wall s | audio s / wall s | per worker | full Slakh2100 (145 h) |")
        print("|---|---|---|---|---|")
        for workers in args.workers:
            out = Path(folder) / f"out{workers}"
            start = time.perf_counter()
            prepare("slakh", raw, out, workers=workers, records_per_shard=1, progress=False)
            wall = time.perf_counter() - start
            rate = audio_seconds / wall
            hours = SLAKH_HOURS * 3600 / rate / 3600
            print(f"| {workers} | {wall:.1f} | {rate:.1f} | {rate / workers:.1f} | "
                  f"{hours:.1f} h at this rate |")  # fmt: skip


if __name__ == "__main__":
    main()

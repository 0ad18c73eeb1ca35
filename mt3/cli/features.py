"""`mt3 features`: the log-mel encoder inputs MT3 computes for an audio file."""

from __future__ import annotations

import argparse

from mt3.cli import add_overwrite, add_variant, command_parser

EPILOG = """\
examples:
  mt3 features take.wav --out take.npz
  mt3 features piano.flac --variant ismir2021 --out piano.npz

The .npz holds inputs float32 [segments, frames, 512] (256 frames per segment for mt3, 512 for
ismir2021; the last segment zero-padded after the log), start_times float64 [segments] (first
frame / 125 s) and num_valid_frames int32 [segments]. Audio is mixed to mono and resampled to
16 kHz first.
"""


def register(subparsers) -> None:
    parser = command_parser(
        subparsers, "features", "audio -> MT3 log-mel encoder inputs (.npz)", __doc__, EPILOG
    )
    parser.add_argument("audio", help="wav, flac, ogg, mp3 or any format libsndfile reads")
    add_variant(parser, "--config", help="whose segment length")
    parser.add_argument("--out", required=True, help="output .npz file")
    parser.add_argument("--batch-size", type=int, default=64, help="segments per device call")
    add_overwrite(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    import numpy as np

    from mt3.atomic import atomic_path, check_outputs
    from mt3.audio import SAMPLE_RATE, load_audio
    from mt3.config import get_variant
    from mt3.errors import UsageError
    from mt3.spectrogram import audio_to_features

    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    check_outputs([args.out], [args.audio], overwrite=args.overwrite)
    samples = load_audio(args.audio)
    inputs, start_times, valid = audio_to_features(
        samples, get_variant(args.variant).segment_frames, batch_size=args.batch_size,
        progress=True,
    )  # fmt: skip
    with atomic_path(args.out) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, inputs=inputs, start_times=start_times, num_valid_frames=valid)
    print(
        f"{args.out}: inputs {list(inputs.shape)} from {samples.size / SAMPLE_RATE:.2f} s of audio "
        f"({inputs.shape[0]} segments of {inputs.shape[1]} frames)"
    )

"""Front-end and codec throughput.

    python benchmarks/audio.py [--seconds 120] [--repeats 3]

Prints a table: log-mel throughput in seconds of audio per second of wall time for librosa's
``melspectrogram`` (same settings: 2048-point periodic Hann, hop 128, no centering, magnitude, 512
HTK bands 20-7600 Hz without normalisation, then the same log) and for mt3's JAX front end, one
segment per call (unbatched) and batched; then the codec: notes -> tokens -> notes for a generated
5-minute multi-instrument piece (7 instruments with drums). librosa is a benchmark-only extra:
`pip install -e .[bench]`.
"""

from __future__ import annotations

import argparse
import platform
import time

import jax
import numpy as np

from mt3.audio import HOP_SAMPLES, SAMPLE_RATE, split_segments
from mt3.config import VARIANTS
from mt3.events import notes_to_segment_tokens, segment_tokens_to_notes
from mt3.notes import Notes
from mt3.spectrogram import log_mel_jit


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up (compilation, caches)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def librosa_log_mel(samples: np.ndarray) -> np.ndarray:
    import librosa

    mel = librosa.feature.melspectrogram(
        y=samples, sr=SAMPLE_RATE, n_fft=2048, hop_length=HOP_SAMPLES, center=False,
        window="hann", power=1.0, n_mels=512, fmin=20.0, fmax=7600.0, htk=True, norm=None,
    )  # fmt: skip
    return np.log(np.where(mel > 0, mel, 1e-5))


def mt3_log_mel(segments: np.ndarray, valid: np.ndarray, batch: int) -> None:
    for begin in range(0, segments.shape[0] - batch + 1, batch):
        log_mel_jit(
            segments[begin : begin + batch], valid[begin : begin + batch]
        ).block_until_ready()


def generated_piece(seconds: float = 300.0, seed: int = 0) -> Notes:
    """A dense multi-instrument piece: (program, notes per second, mean duration) per part."""
    rng = np.random.default_rng(seed)
    parts = [(0, 8.0, 0.4), (24, 4.0, 0.3), (33, 2.0, 0.5), (40, 2.0, 0.8), (56, 1.5, 0.4),
             (73, 2.0, 0.3)]  # fmt: skip
    rows = []
    for program, rate, length in parts:
        count = int(rate * seconds)
        starts = np.sort(rng.uniform(0, seconds, count))
        ends = starts + rng.exponential(length, count) + 0.02
        pitches = rng.integers(36, 96, count)
        for s, e, p in zip(starts, ends, pitches):
            rows.append({"start": s, "end": e, "pitch": int(p), "velocity": 90, "program": program})
    for s in np.arange(0, seconds, 0.125):  # eighth-note drums at 120 bpm
        rows.append({"start": s, "end": s + 0.1, "pitch": 36 if s % 0.5 == 0 else 42,
                     "velocity": 100, "is_drum": True})  # fmt: skip
    return Notes.from_records(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="audio length to transform")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    samples = np.random.default_rng(0).uniform(-0.5, 0.5, int(args.seconds * SAMPLE_RATE))
    samples = samples.astype(np.float32)
    segments, valid = split_segments(samples, VARIANTS["mt3"].segment_frames)
    audio_seconds = samples.size / SAMPLE_RATE

    rows = []
    librosa_time = best_time(lambda: librosa_log_mel(samples), args.repeats)
    rows.append(("librosa melspectrogram + log (whole file)", audio_seconds / librosa_time))
    for batch in (1, 8, 32):
        usable = segments.shape[0] // batch * batch
        seconds = usable * segments.shape[1] / SAMPLE_RATE
        elapsed = best_time(lambda b=batch: mt3_log_mel(segments, valid, b), args.repeats)
        label = "unbatched (1 segment per call)" if batch == 1 else f"batched ({batch} per call)"
        rows.append((f"mt3 JAX log-mel, {label}", seconds / elapsed))

    machine = platform.processor() or platform.machine()
    device = f"{jax.device_count()} JAX device(s): {jax.devices()[0].device_kind}"
    print(f"Front end: {audio_seconds:.0f} s of audio, {machine}, {device}")
    print(f"| {'log-mel':<48} | {'s audio / s':>12} | {'vs librosa':>10} |")
    print(f"|{'-' * 50}|{'-' * 14}|{'-' * 12}|")
    for name, throughput in rows:
        print(f"| {name:<48} | {throughput:12.0f} | {throughput / rows[0][1]:9.1f}x |")

    notes = generated_piece()
    num_samples = int(300.0 * SAMPLE_RATE)
    encode = lambda: notes_to_segment_tokens(
        notes, "mt3", num_samples=num_samples, segment_frames=256, max_length=None
    )
    segments_tokens = encode()
    pairs = [(s.start_time, s.tokens) for s in segments_tokens]
    encode_time = best_time(encode, args.repeats)
    decode_time = best_time(lambda: segment_tokens_to_notes(pairs, "mt3"), args.repeats)
    tokens = sum(len(s.tokens) for s in segments_tokens)
    print()
    drums = int(notes.is_drum.sum())
    print(f"Codec: generated 5-minute piece, {len(notes)} notes ({drums} drums), 7 instruments,")
    print(f"{len(segments_tokens)} segments, {tokens} tokens (mt3 vocab)")
    print(f"| {'codec':<48} | {'seconds':>12} | {'goal':>10} |")
    print(f"|{'-' * 50}|{'-' * 14}|{'-' * 12}|")
    print(f"| {'notes -> tokens (all segments)':<48} | {encode_time:12.4f} | {'< 0.2':>10} |")
    print(f"| {'tokens -> notes (decode + stitch)':<48} | {decode_time:12.4f} | {'':>10} |")


if __name__ == "__main__":
    main()

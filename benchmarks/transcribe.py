"""Transcription speed of the `mt3` network on this machine.

    python benchmarks/transcribe.py [--variant mt3] [--seconds 60] [--repeats 2]

Prints: this machine's float32 matmul FLOP/s (a 2048^3 product), the encoder's segments/s with its
FLOP/s and share of that peak, the cached decoder's tokens/s at batch 1, 8 and 32 with the same,
and the real-time factor of the whole pipeline (log-mel, encoder, MT3's search, batch 8) on a
multi-instrument piece rendered with the General MIDI soundfont: by default the first minute of
Slakh2100's Track00001 (../shared/dataset_samples), else a generated dense band. Weights are
random, so the decoder is driven with the piece's reference tokens: each batch runs as many steps
as its longest reference segment, as a trained model that emits EOS there would.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mt3.audio import SAMPLE_RATE, split_segments
from mt3.config import ModelConfig, get_variant
from mt3.events import notes_to_segment_tokens
from mt3.model.decoding import PHASE_LENGTH, DecodeOptions, decode
from mt3.model.t5 import Transformer
from mt3.spectrogram import log_mel

sys.path.insert(0, str(Path(__file__).parent))
from audio import best_time, generated_piece  # noqa: E402  (benchmarks/audio.py)


def matmul_flops_per_second(repeats: int) -> float:
    a = jnp.ones((2048, 2048), jnp.float32)
    product = jax.jit(lambda x: x @ x)
    seconds = best_time(lambda: product(a).block_until_ready(), repeats + 3)
    return 2 * 2048**3 / seconds


def encoder_flops(config: ModelConfig, frames: int) -> float:
    d, j, f = config.emb_dim, config.joined_dim, config.mlp_dim
    per_layer = 2 * frames * (4 * d * j + 3 * d * f) + 2 * 2 * frames * frames * j
    return 2 * frames * config.input_depth * d + config.num_encoder_layers * per_layer


def decoder_step_flops(config: ModelConfig, cache_length: int, frames: int) -> float:
    """Per token, as computed (self-attention over ``cache_length`` positions, masked)."""
    d, j, f = config.emb_dim, config.joined_dim, config.mlp_dim
    per_layer = 2 * (6 * d * j + 3 * d * f) + 2 * 2 * (cache_length + frames) * j
    return config.num_decoder_layers * per_layer + 2 * d * config.vocab_size


FORCE = 1e4  # added to the forced token's logit: the search then emits the reference tokens


def make_pipeline(graphdef, config: ModelConfig, options: DecodeOptions):
    """The transcription function of mt3.infer (log-mel, encoder, cached search), with the
    decoder's logits nudged towards given target ids so that it emits the reference tokens and
    stops at their EOS like a trained model would; everything else is the real search."""
    beams = options.num_beams if options.mode == "beam" else 1

    def run(state, samples, valid, targets):
        model = nnx.merge(graphdef, state)
        encoded = model.encode(log_mel(samples, valid))
        cache = model.decoder.init_cache(encoded, options.max_length, PHASE_LENGTH)
        rows = jnp.repeat(targets, beams, axis=0)

        def forced(tokens, cache, index, limit):
            logits, cache = model.decoder.decode_step(tokens, cache, index, limit)
            boost = jax.nn.one_hot(rows[:, index], logits.shape[-1]) * FORCE
            return logits + boost, cache

        return decode(forced, cache, samples.shape[0], options)

    return jax.jit(run)


def decoder_seconds_per_step(graphdef, state, config, batch, steps, repeats) -> float:
    """Time per decoding step: (a run emitting ``steps`` ids - a run emitting only EOS) / steps."""
    options = DecodeOptions("mt3", max_length=config.max_decode_length)
    pipeline = make_pipeline(graphdef, config, options)
    samples = np.zeros((batch, config.segment_frames * 128), np.float32)
    valid = np.full(batch, config.segment_frames, np.int32)

    def targets(count):
        ids = np.zeros((batch, config.max_decode_length), np.int32)
        ids[:, : count - 1] = 1100  # pitch 96: any non-EOS event id
        ids[:, count - 1] = 1  # EOS
        return ids

    long, short = targets(steps + 1), targets(1)
    run = lambda ids: pipeline(state, samples, valid, ids).block_until_ready()  # noqa: E731
    return (best_time(lambda: run(long), repeats) - best_time(lambda: run(short), repeats)) / steps


def print_row(name: str, rate: str, flops: float, peak: float) -> None:
    print(f"| {name:<34} | {rate:>18} | {flops / 1e9:8.1f} | {flops / peak:6.0%} |")


SLAKH_SAMPLE = (
    Path(__file__).resolve().parents[2]
    / "shared/dataset_samples/slakh/babyslakh_16k/Track00001/all_src.mid"
)


def piece_audio_and_tokens(midi: str | None, seconds: float, config: ModelConfig):
    """A MIDI file (default: Slakh2100 Track00001 from ../shared, else a generated dense band)
    rendered with the GM soundfont to 16 kHz, its first ``seconds``, and its reference tokens."""
    from mt3.notes import read_midi
    from mt3.render import render_notes

    if midi is None and SLAKH_SAMPLE.is_file():
        midi = str(SLAKH_SAMPLE)
    if midi is None:
        notes, name = generated_piece(seconds, seed=1), "generated band (7 instruments + drums)"
    else:
        notes, name = read_midi(midi).notes, Path(midi).parent.name + "/" + Path(midi).name
        notes = notes.select(notes.start < seconds)
        notes = notes.replace(end=np.minimum(notes.end, seconds))
    audio = render_notes(notes, SAMPLE_RATE).mean(axis=1)[: int(seconds * SAMPLE_RATE)]
    segments = notes_to_segment_tokens(
        notes, config.vocab, num_samples=audio.size, segment_frames=config.segment_frames,
        max_length=None,
    )  # fmt: skip
    return name, notes, audio.astype(np.float32), segments


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="mt3")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the test piece")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8, help="segments per call (piece)")
    parser.add_argument("--midi", help="piece to render (default: the Slakh sample in ../shared)")
    args = parser.parse_args()

    config = get_variant(args.variant)
    model = Transformer(config, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(model)
    peak = matmul_flops_per_second(args.repeats)
    frames = config.segment_frames
    device = f"{jax.devices()[0].device_kind} ({jax.device_count()} device)"
    print(f"{config.name}: {config.num_params():,} parameters, float32, on {device}")
    print(f"matmul peak (2048^3 float32): {peak / 1e9:.1f} GFLOP/s")
    print()
    print(f"| {'stage':<34} | {'rate':>18} | {'GFLOP/s':>8} | {'of peak':>7} |")
    print(f"|{'-' * 36}|{'-' * 20}|{'-' * 10}|{'-' * 9}|")

    encode = jax.jit(lambda state, x: nnx.merge(graphdef, state).encode(x))
    batch = 8
    features = jnp.asarray(np.random.default_rng(0).normal(size=(batch, frames, 512)), jnp.float32)
    seconds = best_time(lambda: encode(state, features).block_until_ready(), args.repeats)
    flops = batch * encoder_flops(config, frames) / seconds
    print_row(f"encoder (batch {batch})", f"{batch / seconds:.1f} segments/s", flops, peak)

    steps = 64
    for batch in (1, 8, 32):
        per_step = decoder_seconds_per_step(graphdef, state, config, batch, steps, args.repeats)
        flops = batch * decoder_step_flops(config, PHASE_LENGTH, frames) / per_step
        rate = f"{batch / per_step:.0f} tokens/s"
        print_row(f"decoder, cached (batch {batch})", rate, flops, peak)

    name, notes, audio, segments = piece_audio_and_tokens(args.midi, args.seconds, config)
    pieces, valid = split_segments(audio, frames)
    lengths = np.array([len(s.tokens) for s in segments])
    targets = np.zeros((len(segments), config.max_decode_length), np.int32)
    for row, segment in enumerate(segments):
        count = min(len(segment.tokens), config.max_decode_length)
        targets[row, :count] = segment.tokens[:count]
    batch = args.batch_size
    options = DecodeOptions("mt3", max_length=config.max_decode_length)
    pipeline = make_pipeline(graphdef, config, options)

    def whole_piece():
        results = []
        for begin in range(0, len(segments), batch):
            rows = slice(begin, begin + batch)
            chunk, chunk_valid, chunk_targets = pieces[rows], valid[rows], targets[rows]
            pad = batch - chunk.shape[0]
            if pad:
                chunk = np.concatenate([chunk, np.zeros((pad, chunk.shape[1]), np.float32)])
                chunk_valid = np.concatenate([chunk_valid, np.ones(pad, np.int32)])
                empty = np.zeros((pad, targets.shape[1]), np.int32)
                empty[:, 0] = 1  # padding rows stop at once
                chunk_targets = np.concatenate([chunk_targets, empty])
            results.append(pipeline(state, chunk, chunk_valid, chunk_targets))
        emitted = np.concatenate([np.asarray(r) for r in results])[: len(segments)]
        return emitted

    emitted = whole_piece()
    matches = sum(
        emitted[row, : lengths[row]].tolist() == segments[row].tokens
        for row in range(len(segments))
    )
    assert matches == len(segments), f"forced decoding reproduced {matches}/{len(segments)}"
    elapsed = best_time(whole_piece, 1)
    print()
    print(
        f"Piece: {args.seconds:.0f} s of {name} ({len(notes)} notes, "
        f"{len(set(notes.program[~notes.is_drum].tolist()))} programs + drums), "
        f"{len(segments)} segments, reference tokens per segment: mean {lengths.mean():.0f}, "
        f"max {lengths.max()}"
    )
    print(
        f"Whole pipeline (log-mel + encoder + MT3's beam-1 search, batch {batch}): "
        f"{elapsed:.1f} s -> {args.seconds / elapsed:.2f}x real time"
    )


if __name__ == "__main__":
    main()

"""Transcription speed of the `mt3` network on this machine.

    python benchmarks/transcribe.py [--variant mt3] [--seconds 60] [--repeats 2]

Prints: this machine's float32 matmul FLOP/s (a 2048^3 product), the encoder's segments/s with its
FLOP/s and share of that peak, the cached decoder's tokens/s at batch 1, 8 and 32 with the same,
and the real-time factor of the whole pipeline (log-mel, encoder, cached decoding, batch 8) on a
generated multi-instrument piece rendered with the General MIDI soundfont. Weights are random, so
the decoder is driven with the piece's reference tokens: each batch runs as many steps as its
longest reference segment, as a trained model that emits EOS there would.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mt3.audio import SAMPLE_RATE, split_segments
from mt3.events import notes_to_segment_tokens
from mt3.model.config import ModelConfig, get_model_config
from mt3.model.decoding import PHASE_LENGTH, phase_limits
from mt3.model.t5 import Transformer
from mt3.spectrogram import log_mel


def best_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


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


def make_forced_decoder(graphdef, max_length: int):
    """Front end + encoder + cached decoding that feeds given tokens for ``steps`` steps, in the
    same cache-length phases as mt3.model.decoding."""

    def run(state, samples, valid, forced, steps):
        model = nnx.merge(graphdef, state)
        encoded = model.encode(log_mel(samples, valid))
        cache = model.decoder.init_cache(encoded, max_length, PHASE_LENGTH)
        carry = (jnp.int32(0), cache, jnp.int32(0))
        for limit in phase_limits(max_length, PHASE_LENGTH):

            def body(carry, limit=limit):
                index, cache, checksum = carry
                logits, cache = model.decoder.decode_step(forced[:, index], cache, index, limit)
                return index + 1, cache, checksum + jnp.argmax(logits, axis=-1).sum()

            carry = jax.lax.while_loop(
                lambda c, limit=limit: (c[0] < limit) & (c[0] < steps), body, carry
            )
        return carry[2]

    return jax.jit(run)


def decoder_seconds_per_step(graphdef, state, config, batch, steps, repeats) -> float:
    """Cached decoding time per step: (run of ``steps`` steps - run of 0 steps) / steps."""
    decoder = make_forced_decoder(graphdef, config.max_decode_length)
    samples = np.zeros((batch, config.segment_frames * 128), np.float32)
    valid = np.full(batch, config.segment_frames, np.int32)
    forced = jnp.full((batch, config.max_decode_length), 1100, jnp.int32)
    run = lambda n: decoder(state, samples, valid, forced, n).block_until_ready()  # noqa: E731
    return (best_time(lambda: run(steps), repeats) - best_time(lambda: run(0), repeats)) / steps


def print_row(name: str, rate: str, flops: float, peak: float) -> None:
    print(f"| {name:<34} | {rate:>18} | {flops / 1e9:8.1f} | {flops / peak:6.0%} |")


def generated_audio_and_tokens(seconds: float, config: ModelConfig):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from audio import generated_piece

    from mt3.render import render_notes

    notes = generated_piece(seconds, seed=1)
    audio = render_notes(notes, SAMPLE_RATE).mean(axis=1)[: int(seconds * SAMPLE_RATE)]
    segments = notes_to_segment_tokens(
        notes, config.vocab, num_samples=audio.size, segment_frames=config.segment_frames,
        max_length=None,
    )  # fmt: skip
    return notes, audio.astype(np.float32), segments


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="mt3")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the test piece")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    config = get_model_config(args.variant)
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

    notes, audio, segments = generated_audio_and_tokens(args.seconds, config)
    pieces, valid = split_segments(audio, frames)
    lengths = np.array([len(s.tokens) for s in segments])
    forced = np.zeros((len(segments), config.max_decode_length), np.int32)
    for row, segment in enumerate(segments):
        forced[row, 1 : min(len(segment.tokens), config.max_decode_length)] = segment.tokens[
            : config.max_decode_length - 1
        ]
    batch = 8
    decoder = make_forced_decoder(graphdef, config.max_decode_length)

    def whole_piece():
        results = []
        for begin in range(0, len(segments), batch):
            rows = slice(begin, begin + batch)
            chunk, chunk_valid, chunk_forced = pieces[rows], valid[rows], forced[rows]
            if chunk.shape[0] < batch:
                pad = batch - chunk.shape[0]
                chunk = np.concatenate([chunk, np.zeros((pad, chunk.shape[1]), np.float32)])
                chunk_valid = np.concatenate([chunk_valid, np.ones(pad, np.int32)])
                chunk_forced = np.concatenate(
                    [chunk_forced, np.zeros((pad, forced.shape[1]), np.int32)]
                )
            steps = int(lengths[rows].max())
            results.append(decoder(state, chunk, chunk_valid, chunk_forced, steps))
        jax.block_until_ready(results)

    elapsed = best_time(whole_piece, 1)
    print()
    print(
        f"Piece: {args.seconds:.0f} s generated band (7 instruments + drums, {len(notes)} notes), "
        f"{len(segments)} segments, reference tokens per segment: mean {lengths.mean():.0f}, "
        f"max {lengths.max()}"
    )
    print(
        f"Whole pipeline (log-mel + encoder + cached decoding, batch {batch}): "
        f"{elapsed:.1f} s -> {args.seconds / elapsed:.2f}x real time"
    )


if __name__ == "__main__":
    main()

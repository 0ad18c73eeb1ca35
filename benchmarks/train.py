"""Training speed and model-FLOP utilisation on this machine.

    python benchmarks/train.py [--steps 3]

Prints, for the `tiny` and `mt3` networks at batch 8 (256-frame inputs, 1024 target positions as
MT3 pads them): steps/s, examples/s, and the model FLOP/s (forward + backward = 3x the forward
matmul and attention FLOPs) as a share of this machine's measured float32 matmul FLOP/s; and the
FLOPs per example of one step, counted from those sizes and by XLA in the compiled step
(docs/training.md scales them to other batches and hardware).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from mt3.allocator import use_tcmalloc
from mt3.config import ModelConfig, RunConfig, TrainConfig, get_variant
from mt3.train.train import build, state_shardings, train_step_fn

sys.path.insert(0, str(Path(__file__).parent))
from transcribe import encoder_flops, matmul_flops_per_second  # noqa: E402


def decoder_forward_flops(config: ModelConfig, targets: int, frames: int) -> float:
    d, j, f = config.emb_dim, config.joined_dim, config.mlp_dim
    per_token = 2 * (6 * d * j + 3 * d * f) + 2 * 2 * (targets + frames) * j  # q,k,v,out; MLP
    cross_keys_values = 2 * 2 * frames * d * j  # per layer, once per example
    layers = config.num_decoder_layers
    return targets * (layers * per_token + 2 * d * config.vocab_size) + layers * cross_keys_values


def measure(name: str, batch: int, steps: int):
    config = get_variant(name)
    mesh = Mesh(np.array(jax.devices()).reshape(-1, 1), ("data", "model"))
    model, optimizer = build(RunConfig(config, train=TrainConfig(variant=name)))
    graphdef, state = nnx.split((model, optimizer))
    shardings = state_shardings(state, mesh)
    batch_sharding = NamedSharding(mesh, P("data"))
    step = jax.jit(
        train_step_fn(graphdef, 1e-4, 0), in_shardings=(shardings, batch_sharding, None),
        out_shardings=(shardings, NamedSharding(mesh, P())), donate_argnums=0,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    targets = np.zeros((batch, config.max_decode_length), np.int32)
    targets[:, :300] = rng.integers(3, 1391, (batch, 300))
    targets[:, 300] = 1
    data = {
        "audio": (rng.normal(size=(batch, config.segment_frames * 128)) * 0.1).astype(np.float32),
        "num_valid_frames": np.full(batch, config.segment_frames, np.int32),
        "targets": targets,
    }
    data = {k: jax.device_put(v, batch_sharding) for k, v in data.items()}
    state = jax.device_put(state, shardings)
    step = step.lower(state, data, 1).compile()  # compiled once, and its FLOPs counted by XLA
    counted = step.cost_analysis()
    counted = counted[0] if isinstance(counted, list) else counted  # older jax: one per device
    state, metrics = step(state, data, 1)
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for index in range(steps):
        state, metrics = step(state, data, index + 2)
    jax.block_until_ready(metrics)
    seconds = (time.perf_counter() - start) / steps
    forward = encoder_flops(config, config.segment_frames) + decoder_forward_flops(
        config, config.max_decode_length, config.segment_frames
    )
    return seconds, 3 * forward * batch / seconds, 3 * forward, counted["flops"] / batch


def main() -> None:
    use_tcmalloc([sys.executable, *sys.argv])  # the allocator the mt3 command runs with
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    peak = matmul_flops_per_second(2)
    print(f"float32 matmul peak (2048^3): {peak / 1e9:.1f} GFLOP/s, {jax.devices()[0].device_kind}")
    print(f"| {'network':<10} | {'batch':>5} | {'steps/s':>8} | {'examples/s':>10} | {'MFU':>5} | "
          "GFLOP/example (model, XLA) |")  # fmt: skip
    print(f"|{'-' * 12}|{'-' * 7}|{'-' * 10}|{'-' * 12}|{'-' * 7}|{'-' * 28}|")
    for name in ("tiny", "mt3"):
        seconds, flops, model, xla = measure(name, args.batch_size, args.steps)
        print(f"| {name:<10} | {args.batch_size:>5} | {1 / seconds:8.3f} | "
              f"{args.batch_size / seconds:10.2f} | {flops / peak:5.0%} | "
              f"{model / 1e9:.1f}, {xla / 1e9:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()

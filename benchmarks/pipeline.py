"""Training-input throughput against the training step it has to feed.

    python benchmarks/pipeline.py [--batches 20]

Builds a small prepared dataset (4 one-minute recordings with a dense generated band each, via
`mt3 prepare folder`), then prints batches/s of the `mt3` input (batch 8, 256-frame crops, 1024
targets) read in-process and with 1 and 2 worker processes, beside the measured training steps/s
of the `mt3` network at batch 8 on this machine, and the ratio (goal: >= 3x).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

from mt3.audio import SAMPLE_RATE
from mt3.config import VARIANTS, DataConfig
from mt3.data.pipeline import SplitSource, training_mixture, with_workers
from mt3.data.prepare import prepare
from mt3.notes import write_midi

sys.path.insert(0, str(Path(__file__).parent))
from audio import generated_piece  # noqa: E402  (benchmarks/audio.py)


def build_dataset(root: Path) -> Path:
    raw = root / "raw"
    raw.mkdir()
    rng = np.random.default_rng(0)
    for index in range(4):
        soundfile.write(raw / f"take{index}.flac", 0.1 * rng.standard_normal(60 * 44100), 44100)
        write_midi(generated_piece(60.0, seed=index), raw / f"take{index}.mid")
    prepare("folder", raw, root / "data", workers=2, progress=False)
    return root / "data"


def batches_per_second(data: Path, workers: int, count: int) -> float:
    dataset = training_mixture(
        [SplitSource(data, "train")], VARIANTS["mt3"], DataConfig(), batch_size=8
    )
    iterator = iter(with_workers(dataset, workers))
    next(iterator)  # start-up (worker processes, first reads)
    start = time.perf_counter()
    for _ in range(count):
        next(iterator)
    return count / (time.perf_counter() - start)


def train_steps_per_second(batch: int = 8, steps: int = 3) -> float:
    import jax.numpy as jnp
    import optax
    from flax import nnx

    from mt3.config import get_variant
    from mt3.model.loss import sequence_loss
    from mt3.model.t5 import Transformer
    from mt3.spectrogram import log_mel

    model = Transformer(get_variant("mt3"), rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adafactor(1e-3, decay_rate=0.8), wrt=nnx.Param)
    rng = np.random.default_rng(0)
    audio = jnp.asarray(rng.normal(size=(batch, 32768)) * 0.1, jnp.float32)
    targets = jnp.asarray(rng.integers(3, 1391, size=(batch, 1024)), jnp.int32)
    targets = targets.at[:, 300:].set(0)  # a realistic number of real targets
    inputs = jnp.pad(targets[:, :-1], ((0, 0), (1, 0)))

    @nnx.jit
    def step(model, optimizer, audio, inputs, targets):
        def loss_fn(model):
            logits = model(log_mel(audio), inputs, targets, deterministic=False)
            return sequence_loss(logits, targets)["loss"]

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    step(model, optimizer, audio, inputs, targets).block_until_ready()
    start = time.perf_counter()
    for _ in range(steps):
        step(model, optimizer, audio, inputs, targets).block_until_ready()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        data = build_dataset(Path(folder))
        rows = [(w, batches_per_second(data, w, args.batches)) for w in (0, 1, 2)]
    steps = train_steps_per_second()
    print(f"mt3 input: batch 8, {32768 / SAMPLE_RATE:.3f} s crops, 1024 targets")
    print(f"| {'reader':<28} | {'batches/s':>10} | {'x mt3 train steps/s':>20} |")
    print(f"|{'-' * 30}|{'-' * 12}|{'-' * 22}|")
    for workers, rate in rows:
        name = "in-process" if workers == 0 else f"{workers} worker process(es)"
        print(f"| {name:<28} | {rate:10.1f} | {rate / steps:19.1f}x |")
    print(f"mt3 training step (batch 8, CPU): {steps:.3f} steps/s")


if __name__ == "__main__":
    main()

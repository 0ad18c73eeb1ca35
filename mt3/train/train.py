"""The training loop, top to bottom: logging -> mesh -> data -> model and optimizer -> sharded
state -> step function -> restore -> loop (with checkpoints and one progress line).

Resume order (docs/architecture.md, models on disk): the latest checkpoint in the workdir, else
``init_from`` parameters (e.g. a converted MT3 checkpoint; optimizer fresh), else a random
initialisation. A checkpoint holds the parameters, the optimizer state and the data iterator's
state, so a resumed run sees the same batches and reproduces an uninterrupted run's losses step for
step. Dropout is reseeded from (seed, step) at every step, so no random state needs saving. SIGTERM
saves and exits (with several processes, all of them at the next logged step); a non-finite loss
stops the run and keeps the last good checkpoint. Multi-process runs: mt3.train.distributed.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, traverse_util
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from mt3.atomic import atomic_path, atomic_write_text
from mt3.config import RunConfig, TrainConfig
from mt3.data.pipeline import training_mixture, training_sources
from mt3.errors import Mt3Error
from mt3.model.loss import sequence_loss
from mt3.model.store import CONFIG_FILE, RunCheckpoints, load_params
from mt3.model.t5 import Transformer, init_time_rows
from mt3.spectrogram import log_mel
from mt3.train.distributed import agreed_signal, host_copy, is_primary, place
from mt3.train.optim import learning_rate_schedule, mt3_adafactor

# Logical axis -> mesh axis, for tensor parallelism along `model` (mesh_model > 1).
LOGICAL_RULES = {"embed": None, "joined_kv": "model", "mlp": "model", "vocab": "model"}


class TrainingError(Mt3Error, RuntimeError):
    """A run that cannot go on (non-finite loss, incompatible checkpoint)."""


def make_mesh(config: TrainConfig) -> Mesh:
    """All devices of all processes as (data, model); a process's devices are consecutive, so
    it holds a contiguous block of each batch's rows and the model axis stays within a host."""
    devices = np.array(sorted(jax.devices(), key=lambda d: (d.process_index, d.id)))
    if jax.local_device_count() % config.mesh_model:
        raise TrainingError(
            f"{jax.local_device_count()} devices per process cannot form a model axis of "
            f"{config.mesh_model}"
        )
    return Mesh(devices.reshape(-1, config.mesh_model), ("data", "model"))


def state_shardings(state, mesh: Mesh, fsdp: bool = False):
    """Replicated, or split along `model` by the parameters' logical axes; with ``fsdp``, every
    array of 4096+ values (parameters and optimizer statistics) is also split along `data` on its
    largest free dimension that divides evenly (XLA gathers it where the step needs it)."""
    data = mesh.shape["data"]

    def spec(variable):
        value = variable.get_value() if isinstance(variable, nnx.Variable) else variable
        shape = getattr(value, "shape", ())
        metadata = variable.get_metadata() if hasattr(variable, "get_metadata") else {}
        axes = metadata.get("out_sharding")
        names = [None] * len(shape)
        if mesh.shape["model"] > 1 and axes and len(axes) == len(shape):
            names = [LOGICAL_RULES.get(a) for a in axes]
        if fsdp and data > 1 and np.prod(shape, dtype=np.int64) >= 4096:
            free = [i for i, n in enumerate(names) if n is None and shape[i] % data == 0]
            if free:
                names[max(free, key=lambda i: shape[i])] = "data"
        return NamedSharding(mesh, P(*names))

    return jax.tree.map(spec, state, is_leaf=lambda x: isinstance(x, nnx.Variable))


def trainable_filter(trainable: str):
    """The nnx filter of the parameters a run updates (TrainConfig.trainable)."""
    if trainable == "decoder":
        return nnx.All(nnx.Param, nnx.PathContains("decoder"))
    return nnx.Param


def build(config: RunConfig):
    """The model (random, or ``init_from``'s parameters) and its optimizer."""
    train = config.train
    model = Transformer(config.model, rngs=nnx.Rngs(params=train.seed, dropout=train.seed + 1))
    if train.init_from:
        _, params = load_params(train.init_from)
        given = traverse_util.flatten_dict(params)
        expected = traverse_util.flatten_dict(nnx.to_pure_dict(nnx.state(model, nnx.Param)))
        for path, value in expected.items():
            shape = getattr(given.get(path), "shape", None)
            if shape != value.shape:
                raise TrainingError(
                    f"{train.init_from}: parameters do not fit {config.model.name} "
                    f"({'/'.join(map(str, path))}: {shape} in the checkpoint, {value.shape} here)"
                )
        state = nnx.state(model, nnx.Param)
        nnx.replace_by_pure_dict(state, params)
        nnx.update(model, state)
    elif train.time_init:
        init_time_rows(model)
    rate = learning_rate_schedule(
        train.learning_rate, train.schedule, train.warmup_steps, train.steps
    )
    optimizer = nnx.Optimizer(
        model, mt3_adafactor(rate, train.momentum), wrt=trainable_filter(train.trainable)
    )
    return model, optimizer


def train_step_fn(graphdef, z_loss: float, seed: int, trainable: str = "all"):
    """state, batch, step -> (state, metrics); dropout keys derive from (seed, step); gradients
    only for the ``trainable`` parameters (frozen ones cost no backward pass of their own)."""
    wrt = nnx.DiffState(0, trainable_filter(trainable))

    def step_fn(state, batch, step):
        model, optimizer = nnx.merge(graphdef, state)
        nnx.reseed(model, dropout=jax.random.fold_in(jax.random.key(seed), step))
        targets = batch["targets"]
        inputs = jnp.pad(targets[:, :-1], ((0, 0), (1, 0)))  # shift right, start token 0

        def loss_fn(model):
            features = log_mel(batch["audio"], batch["num_valid_frames"])
            logits = model(features, inputs, targets, deterministic=False)
            out = sequence_loss(logits, targets, z_loss)
            correct = (jnp.argmax(logits, -1) == targets) & (targets > 0)
            out["accuracy"] = correct.sum() / jnp.maximum(out["tokens"], 1)
            return out["loss"], out

        (_, metrics), grads = nnx.value_and_grad(loss_fn, argnums=wrt, has_aux=True)(model)
        optimizer.update(model, grads)
        return nnx.state((model, optimizer)), metrics

    return step_fn


def _saveable(state):
    """Parameters and optimizer state (no RNG streams: dropout is reseeded every step)."""
    return {
        "params": nnx.to_pure_dict(nnx.filter_state(state[0], nnx.Param)),
        "optimizer": nnx.to_pure_dict(state[1]),
    }


class MetricsLog:
    """One sink: JSON lines in the workdir, and one readable progress line per log interval.
    Only the primary process (process 0 of a multi-process run) writes and prints."""

    def __init__(self, path: Path, total_steps: int, batch_size: int, primary: bool = True):
        from mt3.train.tensorboard import EventWriter

        self.path, self.total, self.batch, self.primary = path, total_steps, batch_size, primary
        self.events = EventWriter(path.parent / "tensorboard") if primary else None
        self.begin(0)

    def forget_after(self, step: int) -> None:
        """Drop the rows of steps after ``step`` (a resumed run logs them again): one row per
        step."""
        if self.primary and self.path.is_file():
            rows = [line for line in self.path.read_text().splitlines() if line.strip()]
            kept = [line for line in rows if json.loads(line).get("step", 0) <= step]
            if len(kept) != len(rows):
                atomic_write_text(self.path, "".join(f"{line}\n" for line in kept))

    def begin(self, step: int) -> None:
        """Rates and ETA count from here (after compilation, when the first step is done)."""
        self.start_step, self.start_time = step, time.perf_counter()

    def write(self, step: int, metrics: dict) -> None:
        if not self.primary:
            return
        elapsed = time.perf_counter() - self.start_time
        rate = (step - self.start_step) / elapsed if elapsed > 0 else 0.0
        record = {
            "step": step,
            **{k: float(v) for k, v in metrics.items()},
            "steps_per_second": rate,
        }
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        self.events.scalars(step, {f"train/{k}": v for k, v in record.items() if k != "step"})
        eta = (self.total - step) / rate if rate > 0 else float("nan")
        per_token = record["loss"] / max(record["tokens"], 1)
        print(
            f"step {step}/{self.total}  loss/token {per_token:.4f}  "
            f"accuracy {record['accuracy']:.3f}  {rate:.2f} steps/s  {rate * self.batch:.1f} ex/s  "
            f"ETA {eta / 60:.1f} min",
            flush=True,
        )

    def write_scores(self, step: int, scores: dict) -> None:
        """Evaluation scores: a row of their own, and one line."""
        if not self.primary:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": step, **scores}) + "\n")
        self.events.scalars(step, scores)
        print("  ".join(f"{k} {v:.3f}" for k, v in scores.items()), flush=True)


def evaluate_during_training(config: RunConfig, params: dict, sources) -> dict:
    """MT3's headline scores on the first ``eval_limit`` recordings of each training folder's
    ``eval_split``, keyed eval/<folder name>/<metric>. ``params`` are host copies: every process
    evaluates the same recordings on its own first device."""
    from mt3.evaluate import evaluate
    from mt3.metrics import HEADLINE_METRICS
    from mt3.model.store import build_model

    model = build_model(config.model, params)
    scores = {}
    for source in sources:
        mean, _ = evaluate(model, source.folder, config.train.eval_split,
                           limit=config.train.eval_limit, progress=False)  # fmt: skip
        for name in HEADLINE_METRICS:
            scores[f"eval/{source.folder.name}/{name}"] = mean.get(name, float("nan"))
    return scores


def plot_curves(workdir: str | Path) -> Path:
    """WORKDIR/curves.png: loss per token and accuracy (and eval onset F1) against steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workdir = Path(workdir)
    rows = [json.loads(line) for line in open(workdir / "metrics.jsonl")]
    train_rows = [r for r in rows if "loss" in r]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    steps = [r["step"] for r in train_rows]
    axes[0].plot(steps, [r["loss"] / max(r["tokens"], 1) for r in train_rows])
    axes[0].set(xlabel="step", ylabel="loss per target token", title="training loss")
    axes[1].plot(steps, [r["accuracy"] for r in train_rows], label="token accuracy")
    for key in sorted({k for r in rows for k in r if k.endswith("/Onset F1")}):
        points = [(r["step"], r[key]) for r in rows if key in r]
        axes[1].plot(*zip(*points), marker="o", label=key)
    axes[1].set(xlabel="step", title="accuracy / onset F1")
    axes[1].legend(fontsize=7)
    figure.tight_layout()
    path = workdir / "curves.png"
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    plt.close(figure)
    return path


def train(config: RunConfig, workdir: str | Path) -> dict:
    """Run (or resume) a training run in ``workdir``; returns the last logged metrics."""
    train_config = config.train

    # Logging and the run's resolved configuration (after checking it can resume this run);
    # with several processes (docs/training.md), process 0 writes the run's files.
    workdir = Path(workdir).absolute()
    check_resumable(config, workdir)
    primary = is_primary()
    if primary:
        workdir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(workdir / CONFIG_FILE, config.to_json())
        atomic_write_text(workdir / "config.gin", config.to_gin())
    log = MetricsLog(workdir / "metrics.jsonl", train_config.steps, train_config.batch_size,
                     primary)  # fmt: skip

    # Mesh and data: each process reads its rows of every global batch.
    mesh = make_mesh(train_config)
    processes = jax.process_count()
    batch_size = train_config.batch_size
    if batch_size % mesh.shape["data"]:
        raise TrainingError(
            f"batch size {batch_size} must divide over {mesh.shape['data']} data devices"
        )
    sources = training_sources(config.data)
    if train_config.eval_every_steps:  # every evaluated split exists, before any step
        training_sources(config.data, train_config.eval_split)
    dataset = training_mixture(
        sources, config.model, config.data, batch_size=batch_size // processes,
        seed=train_config.seed, shard=(jax.process_index(), processes),
    )  # fmt: skip
    iterator = iter(dataset)

    # Model, optimizer and their sharded state.
    model, optimizer = build(config)
    graphdef, state = nnx.split((model, optimizer))
    shardings = state_shardings(state, mesh, train_config.fsdp)
    state = place(state, shardings)
    batch_sharding = NamedSharding(mesh, P("data"))
    step_fn = jax.jit(
        train_step_fn(graphdef, train_config.z_loss, train_config.seed, train_config.trainable),
        in_shardings=(shardings, batch_sharding, None),
        out_shardings=(shardings, NamedSharding(mesh, P())),
        donate_argnums=0,
    )

    # Restore the newest intact checkpoint of this workdir, if any.
    checkpoints = RunCheckpoints(workdir, keep=train_config.keep_checkpoints)
    start = 0
    if checkpoints.latest_step() is not None:
        target = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), _saveable(state)
        )
        start, restored, data_state = checkpoints.restore(target)
        nnx.replace_by_pure_dict(state[0], restored["params"])
        nnx.replace_by_pure_dict(state[1], restored["optimizer"])
        iterator.set_state(data_state)
        log.forget_after(start)  # steps after the checkpoint are run (and logged) again
        if primary:
            print(f"resumed from {checkpoints.directory} at step {start}", flush=True)

    # SIGTERM (a scheduler's preemption) and SIGINT save a checkpoint and stop; a second SIGINT
    # stops at once.
    stop = {"signal": None, "saved": start or None}

    def on_signal(number, _):
        if stop["signal"] == signal.SIGINT and number == signal.SIGINT:
            raise KeyboardInterrupt
        stop["signal"] = number

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    last = {}
    try:
        for step in range(start + 1, train_config.steps + 1):
            local = next(iterator)
            batch = {
                key: jax.make_array_from_process_local_data(batch_sharding, np.asarray(local[key]))
                for key in ("audio", "num_valid_frames", "targets")
            }
            new_state, metrics = step_fn(state, batch, step)
            if step == start + 1:
                jax.block_until_ready(metrics)
                log.begin(step)  # rates without the compilation time
            log_step = step % train_config.log_every_steps == 0 or step == train_config.steps
            if log_step:
                metrics = jax.device_get(metrics)
                if not np.isfinite(metrics["loss"]):
                    kept = f"step {stop['saved']} is the newest checkpoint" if stop["saved"] else (
                        "no checkpoint was written yet")  # fmt: skip
                    raise TrainingError(f"non-finite loss at step {step}; stopped ({kept})")
                last = {"step": step, **{k: float(v) for k, v in metrics.items()}}
                log.write(step, metrics)
                if processes == 1:
                    checkpoints.poll()  # a failed save (a full disk) stops the run here
            state = new_state
            if train_config.eval_every_steps and step % train_config.eval_every_steps == 0:
                began = time.perf_counter()
                params = host_copy(_saveable(state)["params"])
                log.write_scores(step, evaluate_during_training(config, params, sources))
                log.start_time += time.perf_counter() - began  # rates count training time only
            # Processes agree on stopping where they already wait for each other (log steps).
            stopping = stop["signal"] if processes == 1 else (
                agreed_signal(stop["signal"]) if log_step else None)  # fmt: skip
            every = train_config.checkpoint_every_steps
            if step % every == 0 or step == train_config.steps or stopping:
                checkpoints.wait()  # the previous save failed (a full disk): stop here
                # Every process's iterator stands at the same position (ProcessRows).
                checkpoints.save(step, _saveable(state), iterator.get_state())
                stop["saved"] = step
            if stopping:
                checkpoints.wait()
                if primary:
                    name = signal.Signals(stopping).name
                    print(f"stopped by {name} at step {step}; checkpoint saved; run the same "
                          "command to resume", flush=True)  # fmt: skip
                return {**last, "step": step, "stopped_by": int(stopping)}
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        checkpoints.close()
    return last


# What a resumed run must share with the run in its workdir: the network's shapes, the data the
# iterator walks and the optimizer state's structure.
RESUME_FIELDS = {
    "model": ("vocab", "vocab_size", "emb_dim", "num_heads", "head_dim", "num_encoder_layers",
              "num_decoder_layers", "mlp_dim", "input_depth", "segment_frames",
              "max_decode_length", "max_position"),
    "data": ("mixture",),
    "train": ("batch_size", "seed", "trainable"),
}  # fmt: skip


def check_resumable(config: RunConfig, workdir: Path) -> None:
    """A workdir with checkpoints can only be resumed with a compatible configuration; checked
    before anything is written. TrainingError names the differing settings."""
    from mt3.model.store import CHECKPOINTS_DIR

    path = workdir / CONFIG_FILE
    if not (workdir / CHECKPOINTS_DIR).is_dir() or not path.is_file():
        return
    try:
        saved = RunConfig.from_json(path.read_text())
    except (ValueError, TypeError, KeyError) as error:
        raise TrainingError(
            f"{path}: unreadable run config ({error}); use a new --workdir"
        ) from None
    differences = []
    for part, fields in RESUME_FIELDS.items():
        for field in fields:
            was, now = getattr(getattr(saved, part), field), getattr(getattr(config, part), field)
            if was != now:
                differences.append(f"{field} {was!r} (now {now!r})")
    if (saved.train.momentum > 0) != (config.train.momentum > 0):
        differences.append(f"momentum {saved.train.momentum} (now {config.train.momentum})")
    if differences:
        raise TrainingError(
            f"{workdir}: cannot resume with other settings; the run has {', '.join(differences)}"
            f"; use a new --workdir, or resume with {workdir / 'config.gin'}"
        )

"""The demo run: the whole project in one command, on a laptop-class CPU, from nothing.

    mt3 demo [--workdir runs/demo] [--data data]

1. **Data.** Build the generated datasets that gin/demo.gin trains on (under ``--data``), unless
   they are already there.
2. **Train** the `tiny` network with gin/demo.gin (resuming if ``--workdir`` has a checkpoint).
3. **Evaluate** it on every dataset's validation split: MT3's metrics per recording and their
   mean, in WORKDIR/eval/<dataset>/scores.json and as a table.
4. **Transcribe** a held-out test recording: WORKDIR/example/<id>.wav (what the network hears),
   <id>.mid (what it heard), <id>.reference.mid (the truth) and <id>.png (its piano roll drawn
   over the reference).

WORKDIR/demo.json keeps the scores and the time each stage took. Running the command again
resumes or, when training is finished, only evaluates and transcribes again.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

from mt3.errors import Mt3Error

GIN_DIR = Path(__file__).resolve().parent.parent / "gin"
DEMO_GIN = GIN_DIR / "demo.gin"
# What `mt3 prepare` generates for each dataset the demo may train on.
SYNTHETIC = {
    "synth-piano": {"count": 300, "seconds": 30.0},
    "synth-ensemble": {"count": 300, "seconds": 30.0},
    "synth-band": {"count": 300, "seconds": 30.0},
    "synth-chorales": {"count": 371, "seconds": 60.0},
}


class DemoError(Mt3Error, ValueError):
    """A demo configuration that names data the demo cannot generate."""


def demo_config(gin_files=(), gin_params=(), data_root: str | None = None):
    """The RunConfig of gin/demo.gin (or the given files) and bindings; ``data_root`` wins."""
    from mt3.config import load_config

    config = load_config(gin_files or [DEMO_GIN], gin_params)
    if data_root:
        config = dataclasses.replace(
            config, data=dataclasses.replace(config.data, data_root=str(data_root))
        )
    return config


def use_cpu_cores(batch_size: int) -> int:
    """Ask XLA for one host device per core (at most 8, dividing the batch) before JAX starts:
    on a CPU the tiny network trains ~1.4x faster data-parallel over 2 single-core devices than
    on one two-threaded device. No effect on GPUs/TPUs; a device count in XLA_FLAGS wins."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" in flags:
        return 0
    usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None  # not macOS
    cores = min(len(usable) if usable else os.cpu_count() or 1, 8)
    count = max(d for d in range(1, cores + 1) if batch_size % d == 0)
    if count > 1:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()
    return count


def ensure_data(config) -> list[str]:
    """Generate each missing dataset of the mixture; returns the ones that were generated."""
    from mt3.data.pipeline import mixture_folders
    from mt3.data.prepare import prepare
    from mt3.data.records import MANIFEST_FILE

    built = []
    for folder in mixture_folders(config.data):
        name = folder.name
        if (folder / MANIFEST_FILE).is_file():
            continue
        if name not in SYNTHETIC:
            raise DemoError(
                f"{folder}: not prepared, and the demo only generates {', '.join(SYNTHETIC)}; "
                f"run `mt3 prepare {name} --raw DIR --out {folder}` first"
            )
        prepare(name, None, folder, **SYNTHETIC[name])
        built.append(name)
    return built


def transcribe_example(model, config, out_dir: Path) -> dict:
    """The first test recording of the mixture's first dataset: audio, transcription, truth."""
    from mt3.audio import SAMPLE_RATE
    from mt3.data.pipeline import SplitSource, mixture_folders
    from mt3.infer import Transcriber
    from mt3.metrics import score
    from mt3.notes import write_midi
    from mt3.outputs import write_outputs
    from mt3.render import write_wav

    record = SplitSource(mixture_folders(config.data)[0], "test")[0]
    base = out_dir / record.id
    out_dir.mkdir(parents=True, exist_ok=True)
    audio = record.float_audio()
    write_wav(audio, SAMPLE_RATE, base.with_suffix(".wav"))
    write_midi(record.notes, base.with_name(f"{record.id}.reference.mid"))
    result = Transcriber(model).transcribe(audio)
    written = write_outputs(
        result, base, ("midi", "png"), reference=record.notes, title=f"{record.id} (test)"
    )
    return {
        "id": record.id,
        "files": [str(base.with_suffix(".wav")), *map(str, written)],
        "scores": score(record.notes, result.notes),
    }


def run_demo(workdir, data_root=None, gin_files=(), gin_params=()) -> dict:
    """All four stages; returns (and writes to WORKDIR/demo.json) scores and stage times."""
    from mt3.atomic import atomic_write_text
    from mt3.data.pipeline import mixture_folders
    from mt3.evaluate import evaluate, format_table
    from mt3.model.store import load_model
    from mt3.train.train import train

    workdir = Path(workdir)
    config = demo_config(gin_files, gin_params, data_root)
    folders = mixture_folders(config.data)
    use_cpu_cores(config.train.batch_size)
    seconds, began = {}, time.perf_counter()

    def stage(name, start):
        seconds[name] = round(time.perf_counter() - start, 1)
        print(f"[demo] {name}: {seconds[name] / 60:.1f} min", flush=True)
        return time.perf_counter()

    names = ", ".join(folder.name for folder in folders)
    print(f"[demo] data: {names} under {config.data.data_root}", flush=True)
    ensure_data(config)
    start = stage("data", began)
    steps = config.train.steps
    print(f"[demo] training {config.model.name} for {steps} steps in {workdir}", flush=True)
    trained = train(config, workdir)
    if "stopped_by" in trained:  # stopped by a signal: run the demo again to resume
        raise SystemExit(128 + trained["stopped_by"])
    start = stage("train", start)
    model = load_model(workdir)
    scores = {}
    for folder in folders:
        name = folder.name
        mean, _ = evaluate(
            model, folder, "validation", out_dir=workdir / "eval" / name, overwrite=True
        )  # the demo's own outputs: a rerun replaces them
        scores[name] = mean
        print(f"[demo] {name} validation:\n{format_table(mean)}", flush=True)
    start = stage("evaluate", start)
    example = transcribe_example(model, config, workdir / "example")
    stage("transcribe", start)
    seconds["total"] = round(time.perf_counter() - began, 1)
    summary = {"config": json.loads(config.to_json()), "validation": scores, "example": example,
               "seconds": seconds}  # fmt: skip
    atomic_write_text(workdir / "demo.json", json.dumps(summary, indent=1) + "\n")
    onset = example["scores"]["Onset F1"]
    print(f"[demo] held-out {example['id']}: onset F1 {onset:.3f}; wrote", flush=True)
    for path in example["files"]:
        print(f"  {path}", flush=True)
    print(f"[demo] done in {seconds['total'] / 60:.1f} min; summary in {workdir / 'demo.json'}")
    return summary

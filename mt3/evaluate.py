"""Evaluation: transcribe every recording of a prepared split with the same code as
`mt3 transcribe`, and score it with MT3's metrics (design.md §1: one path per job)."""

from __future__ import annotations

import json
from pathlib import Path

from tqdm import tqdm

from mt3.atomic import atomic_write_text
from mt3.data.pipeline import SplitSource
from mt3.infer import TranscribeOptions, Transcriber, write_outputs
from mt3.metrics import HEADLINE_METRICS, mean_scores, score


def load_any_model(path: str | Path):
    """An mt3 checkpoint folder (config.json + params) or a training workdir (latest step)."""
    path = Path(path)
    if (path / "checkpoints").is_dir():
        from mt3.train.train import load_trained_model

        return load_trained_model(path)
    from mt3.model.store import load_model

    return load_model(path)


def evaluate(
    model,
    data_dir: str | Path,
    split: str = "validation",
    *,
    options: TranscribeOptions | None = None,
    out_dir: str | Path | None = None,
    formats=(),
    limit: int | None = None,
    progress: bool = True,
) -> tuple[dict, dict]:
    """(mean scores, {recording id: scores}); with ``out_dir``, writes scores.json (and the
    transcriptions in ``formats``, with the reference under the piano roll)."""
    source = SplitSource(data_dir, split)
    transcriber = Transcriber(model, options or TranscribeOptions())
    count = len(source) if limit is None else min(limit, len(source))
    per_recording = {}
    for index in tqdm(range(count), desc=f"evaluate {source.name}", disable=not progress):
        record = source[index]
        result = transcriber.transcribe(record.float_audio())
        per_recording[record.id] = score(
            record.notes, result.notes,
            invalid_events=result.invalid_events, dropped_events=result.dropped_events,
        )  # fmt: skip
        if out_dir is not None and formats:
            write_outputs(result, Path(out_dir) / record.id, formats, reference=record.notes,
                          title=record.id)  # fmt: skip
    mean = mean_scores(per_recording.values())
    if out_dir is not None:
        payload = {
            "data": str(data_dir),
            "split": split,
            "metrics": mean,
            "recordings": per_recording,
        }
        atomic_write_text(Path(out_dir) / "scores.json", json.dumps(payload, indent=1) + "\n")
    return mean, per_recording


def format_table(mean: dict, names=HEADLINE_METRICS) -> str:
    names = [n for n in names if n in mean]
    width = max(len(n) for n in names)
    return "\n".join(f"{name:<{width}}  {mean[name]:.4f}" for name in names)

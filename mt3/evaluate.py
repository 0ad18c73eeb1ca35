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


# MT3 paper Table 2 / Table 3 (mixture model): the columns and the split each dataset reports on
# (GuitarSet and URMP have no test split in MT3, so their paper numbers are validation numbers).
PAPER_DATASETS = {
    "maestro": "test", "cerberus4": "test", "guitarset": "validation", "musicnet": "test",
    "slakh": "test", "urmp": "validation",
}  # fmt: skip
PAPER_ROWS = (
    ("Frame F1", "Frame F1"),
    ("Onset F1", "Onset F1"),
    ("Onset+Offset F1", "Onset + offset F1"),
    ("Multi-inst. F1 (flat)", "Onset + offset + program F1 (flat)"),
    ("Multi-inst. F1 (midi_class)", "Onset + offset + program F1 (midi_class)"),
    ("Multi-inst. F1 (full)", "Onset + offset + program F1 (full)"),
)
PAPER_MT3 = {  # paper Tables 2 and 3, MT3 (mixture); same dataset order as PAPER_DATASETS
    "Frame F1": (0.8615, 0.8704, 0.888, 0.6766, 0.7857, 0.8252),
    "Onset F1": (0.9455, 0.9187, 0.895, 0.5016, 0.7585, 0.77),
    "Onset+Offset F1": (0.7987, 0.7977, 0.7822, 0.3301, 0.5727, 0.5776),
    "Multi-inst. F1 (flat)": (0.807, 0.7363, 0.7837, 0.3312, 0.4777, 0.6216),
    "Multi-inst. F1 (midi_class)": (0.8024, 0.811, 0.7825, 0.3127, 0.6188, 0.5913),
    "Multi-inst. F1 (full)": (0.8164, 0.7577, 0.7815, 0.3396, 0.5453, 0.4979),
}


def paper_table(model, data_root: str | Path, *, options=None, limit=None, split=None) -> str:
    """MT3's Table 2/3 layout over the prepared datasets under ``data_root`` (missing ones show
    as '-'), each cell "ours (paper)"."""
    means = {}
    for dataset, default_split in PAPER_DATASETS.items():
        folder = Path(data_root) / dataset
        if (folder / "manifest.json").is_file():
            means[dataset], _ = evaluate(
                model, folder, split or default_split, options=options, limit=limit
            )
    header = "| metric | " + " | ".join(PAPER_DATASETS) + " |"
    lines = [header, "|" + "---|" * (len(PAPER_DATASETS) + 1)]
    for label, name in PAPER_ROWS:
        cells = []
        for index, dataset in enumerate(PAPER_DATASETS):
            ours = f"{means[dataset][name]:.3f}" if dataset in means else "-"
            cells.append(f"{ours} ({PAPER_MT3[label][index]:.3f})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)

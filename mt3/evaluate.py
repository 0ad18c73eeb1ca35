"""Evaluation: transcribe every recording of a prepared split with the same code as
`mt3 transcribe`, and score it with MT3's metrics (one path per job: docs/architecture.md)."""

from __future__ import annotations

import collections
import csv
import io
import json
from pathlib import Path

from mt3.atomic import atomic_write_text, check_outputs
from mt3.data.pipeline import SplitSource
from mt3.data.records import MANIFEST_FILE
from mt3.errors import UsageError
from mt3.infer import TranscribeOptions, Transcriber
from mt3.metrics import HEADLINE_METRICS, mean_scores, score
from mt3.outputs import output_paths, write_outputs

SCORE_FILES = ("scores.json", "scores.csv")  # what `evaluate` writes into its out_dir


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
    overwrite: bool = False,
) -> tuple[dict, dict]:
    """(mean scores, {recording id: scores}); with ``out_dir``, writes the scores per recording
    and their mean as scores.json and scores.csv (``scores_to_csv``), and the transcriptions in
    ``formats`` (with the reference under the piano roll). Existing outputs are an error before
    any work unless ``overwrite``."""
    source = SplitSource(data_dir, split)
    count = len(source) if limit is None else min(limit, len(source))
    if limit is not None and limit < 1:
        raise UsageError(f"the recording limit must be at least 1, got {limit}")
    if out_dir is not None:
        planned = [Path(out_dir) / name for name in SCORE_FILES]
        for record_id in source.ids[:count]:
            planned += output_paths(Path(out_dir) / record_id, formats)
        check_outputs(planned, overwrite=overwrite)
    transcriber = Transcriber(model, options or TranscribeOptions())
    per_recording = {}
    in_flight = collections.deque()  # records read by the stream, waiting for their result

    def audios():
        for index in range(count):
            record = source[index]
            in_flight.append(record)
            yield record.float_audio()

    results = transcriber.transcribe_many(audios(), progress=progress)  # one stream of segments
    for result in results:
        record = in_flight.popleft()
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
        atomic_write_text(Path(out_dir) / "scores.csv", scores_to_csv(mean, per_recording))
    return mean, per_recording


def scores_to_csv(mean: dict, per_recording: dict) -> str:
    """One row per recording and a last row ``mean``; a column per metric of ``mean`` (which has
    every metric any recording has; empty where a recording lacks it). Floats as Python
    writes them (they read back exactly)."""
    names = list(mean)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["recording", *names])
    for record_id, scores in [*per_recording.items(), ("mean", mean)]:
        writer.writerow([record_id, *(scores.get(name, "") for name in names)])
    return out.getvalue()


def format_table(mean: dict, names=HEADLINE_METRICS) -> str:
    names = [n for n in names if n in mean]
    width = max(len(n) for n in names)
    return "\n".join(f"{name:<{width}}  {mean[name]:.4f}" for name in names)


# MT3 paper Table 2 / Table 3 (mixture model): row labels and the metric each shows.
PAPER_ROWS = (
    ("Frame F1", "Frame F1"),
    ("Onset F1", "Onset F1"),
    ("Onset+Offset F1", "Onset + offset F1"),
    ("Multi-inst. F1 (flat)", "Onset + offset + program F1 (flat)"),
    ("Multi-inst. F1 (midi_class)", "Onset + offset + program F1 (midi_class)"),
    ("Multi-inst. F1 (full)", "Onset + offset + program F1 (full)"),
)


def paper_columns() -> list[tuple[str, str, dict]]:
    """(dataset, the split the paper reports, its paper table: column and MT3's scores) of the
    datasets that declare a paper split, in the paper's column order."""
    from mt3.data.datasets import dataset_table, registry

    papers = [(d.name, d.paper_split, dataset_table(d.name)["paper"])
              for d in registry().values() if d.paper_split]  # fmt: skip
    return sorted(papers, key=lambda item: item[2]["column"])


def paper_table(model, data_root: str | Path, *, options=None, limit=None, split=None,
                out_dir: str | Path | None = None, overwrite: bool = False) -> str:  # fmt: skip
    """MT3's Table 2/3 layout over the prepared datasets under ``data_root`` (missing ones show
    as '-'), each cell "ours (paper)". Each dataset is scored on ``split`` if given, else on the
    paper's split, else (a folder prepared without it, such as a release's samples) on its test,
    validation or train split, named in a note under the table. With ``out_dir``:
    OUT/<dataset>/scores.{json,csv} and the table as OUT/paper_table.md, existing ones an error
    before any work unless ``overwrite``."""
    columns = paper_columns()
    sources, notes = {}, []
    for dataset, paper_split, _ in columns:
        folder = Path(data_root) / dataset
        if not (folder / MANIFEST_FILE).is_file():
            continue
        chosen = split or paper_split
        if split is None:
            splits = json.loads((folder / MANIFEST_FILE).read_text())["splits"]
            if paper_split not in splits:
                chosen = next((s for s in ("test", "validation", "train") if s in splits), chosen)
                notes.append(f"{dataset}: its {chosen} split (the paper's is {paper_split})")
        sources[dataset] = SplitSource(folder, chosen)  # a missing split fails before any work
    if out_dir is not None:
        planned = [Path(out_dir) / d / name for d in sources for name in SCORE_FILES]
        check_outputs([*planned, Path(out_dir) / "paper_table.md"], overwrite=overwrite)
    means = {}
    for dataset, source in sources.items():
        means[dataset], _ = evaluate(
            model, source.folder, source.split, options=options, limit=limit,
            out_dir=None if out_dir is None else Path(out_dir) / dataset, overwrite=True,
        )  # fmt: skip
    lines = ["| metric | " + " | ".join(d for d, _, _ in columns) + " |",
             "|" + "---|" * (len(columns) + 1)]  # fmt: skip
    for label, name in PAPER_ROWS:
        cells = []
        for dataset, _, paper in columns:
            ours = f"{means[dataset][name]:.3f}" if dataset in means else "-"
            cells.append(f"{ours} ({paper[label]:.3f})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    table = "\n".join(lines + [f"note: {note}" for note in notes])
    if out_dir is not None:
        atomic_write_text(Path(out_dir) / "paper_table.md", table + "\n")
    return table

"""`mt3 evaluate`: its score files (JSON and CSV) and the paper table, on a random tiny model and
(slow) on the released weights over folders prepared from the real release samples."""

from __future__ import annotations

import csv
import io
import json

import pytest

from mt3.data.prepare import prepare
from mt3.evaluate import scores_to_csv


def test_scores_to_csv_rows_and_columns():
    per_recording = {"a": {"Onset F1": 0.5}, "b": {"Onset F1": 1.0, "Drum onset F1": 0.25}}
    mean = {"Onset F1": 0.75, "Drum onset F1": 0.25}
    assert scores_to_csv(mean, per_recording) == (
        "recording,Onset F1,Drum onset F1\na,0.5,\nb,1.0,0.25\nmean,0.75,0.25\n"
    )


def test_evaluate_writes_json_and_csv(tiny_checkpoint, tmp_path, run_cli):
    data = tmp_path / "data" / "synth-piano"
    prepare("synth-piano", None, data, workers=1, progress=False, count=20, seconds=3.0)
    out = tmp_path / "eval"
    args = ["evaluate", "--checkpoint", tiny_checkpoint, "--data", data, "--out", out,
            "--batch-size", "2"]  # fmt: skip
    status, _, err = run_cli(*args)
    assert status == 0, err
    saved = json.loads((out / "scores.json").read_text())
    rows = list(csv.reader(io.StringIO((out / "scores.csv").read_text())))
    names = list(saved["metrics"])
    assert rows[0] == ["recording", *names]
    assert [row[0] for row in rows[1:]] == [*saved["recordings"], "mean"] and len(rows) == 4
    for row in rows[1:]:
        scores = saved["metrics"] if row[0] == "mean" else saved["recordings"][row[0]]
        assert [float(v) if v else None for v in row[1:]] == [scores.get(n) for n in names]
    # Existing score files are an error before any work, unless --overwrite.
    before = (out / "scores.csv").stat().st_mtime_ns
    status, _, err = run_cli(*args)
    assert status == 2 and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert (out / "scores.csv").stat().st_mtime_ns == before
    assert run_cli(*args, "--overwrite")[0] == 0


def paper_rows(out: str) -> dict[str, list[str]]:
    rows = [line.strip("|").split("|") for line in out.splitlines() if line.startswith("|")]
    return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows}


def test_paper_table_falls_back_to_a_prepared_split_and_writes_scores(
    samples, tiny_checkpoint, tmp_path, run_cli
):
    root = tmp_path / "data"
    prepare("maestro", samples("maestro"), root / "maestro", workers=1, progress=False)
    out = tmp_path / "table"
    status, stdout, err = run_cli("evaluate", "--checkpoint", tiny_checkpoint, "--paper-table",
                                  root, "--out", out, "--batch-size", "2")  # fmt: skip
    assert status == 0, err
    assert "note: maestro: its train split (the paper's is test)" in stdout
    assert (out / "paper_table.md").read_text().strip() == stdout.strip()
    assert json.loads((out / "maestro" / "scores.json").read_text())["split"] == "train"
    assert (out / "maestro" / "scores.csv").is_file() and not (out / "slakh").exists()
    # An explicit split the folder lacks is an error before any work.
    status, _, err = run_cli("evaluate", "--checkpoint", tiny_checkpoint, "--paper-table", root,
                             "--split", "test")  # fmt: skip
    assert status == 2 and "no 'test' split" in err


@pytest.mark.slow
def test_paper_table_with_the_released_weights(released_model, samples, tmp_path, run_cli):
    """The released model over MAESTRO, Slakh2100 and GuitarSet folders prepared from the real
    release samples. The samples' audio is cut to seconds while their MIDI runs on, so recall is
    near 0; what the model writes in those seconds must be right (precision)."""
    root = tmp_path / "data"
    prepare("maestro", samples("maestro"), root / "maestro", workers=1, progress=False)
    prepare("slakh", samples("slakh") / "slakh2100_flac_redux", root / "slakh", workers=1,
            progress=False)  # fmt: skip
    prepare("guitarset", samples("guitarset"), root / "guitarset", workers=1, progress=False,
            skip_incomplete=True)  # fmt: skip
    out = tmp_path / "table"
    status, stdout, err = run_cli("evaluate", "--checkpoint", released_model, "--paper-table",
                                  root, "--out", out)  # fmt: skip
    assert status == 0, err
    rows = paper_rows(stdout)
    assert rows["metric"] == ["maestro", "cerberus4", "guitarset", "musicnet", "slakh", "urmp"]
    for cells in list(rows.values())[2:]:
        ours = [cell.split(" ")[0] for cell in cells]
        assert ours[1] == ours[3] == ours[5] == "-"  # not prepared
        assert all(0.0 <= float(ours[i]) <= 1.0 for i in (0, 2, 4))
    for dataset in ("maestro", "slakh"):
        metrics = json.loads((out / dataset / "scores.json").read_text())["metrics"]
        assert metrics["Onset precision"] >= 0.9, (dataset, metrics["Onset precision"])
        assert metrics["Frame Precision"] >= 0.9, (dataset, metrics["Frame Precision"])

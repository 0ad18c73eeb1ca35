"""The notebooks run from top to bottom (nbclient, a real kernel) on small inputs with the tiny
model standing in for the released one, so they never rot; the committed files carry no
outputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_the_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == ["finetune.ipynb", "transcribe.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebooks_have_no_outputs(path):
    notebook = json.loads(path.read_text())
    dirty = [
        index
        for index, cell in enumerate(notebook["cells"])
        if cell["cell_type"] == "code" and (cell["outputs"] or cell["execution_count"] is not None)
    ]
    assert dirty == [], f"{path.name}: cells {dirty} keep outputs; clear them before committing"
    assert "widgets" not in notebook["metadata"]


@pytest.fixture
def run_notebook(tmp_path, monkeypatch, tiny_checkpoint):
    """``run_notebook(name, **env)``: execute notebooks/<name> in tmp_path with a user cache that
    holds the tiny model where `mt3 download mt3` leaves the released one."""
    nbclient = pytest.importorskip("nbclient", reason="the notebooks extra is not installed")
    import nbformat

    home = tmp_path / "home"
    shutil.copytree(tiny_checkpoint, home / "models" / "mt3")
    (home / "models" / "mt3" / "release.json").write_text('{"release": "tiny stand-in"}\n')
    monkeypatch.setenv("MT3_HOME", str(home))
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the kernel imports this checkout's mt3

    def run(name: str, **env: str):
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        notebook = nbformat.read(REPO / "notebooks" / name, as_version=4)
        client = nbclient.NotebookClient(
            notebook, timeout=300, kernel_name="python3",
            resources={"metadata": {"path": str(tmp_path)}},
        )  # fmt: skip
        client.execute()
        return "\n".join(
            output.get("text", "") + json.dumps(output.get("data", {}))[:200]
            for cell in notebook.cells
            if cell.cell_type == "code"
            for output in cell.outputs
        )

    return run


def test_transcribe_notebook_runs(run_notebook, tmp_path):
    text = run_notebook("transcribe.ipynb")
    out = tmp_path / "mt3-notebook" / "out"
    assert {p.name for p in out.iterdir()} >= {"example.mid", "example.png", "example.wav"}
    assert "mt3: already in the cache" in text
    assert "image/png" in text and "audio/wav" in text.replace("audio/x-wav", "audio/wav")
    assert "example.mid" in text  # the download link


def test_finetune_notebook_runs(run_notebook, tmp_path):
    text = run_notebook(
        "finetune.ipynb",
        MT3_NOTEBOOK_STEPS="2",
        MT3_NOTEBOOK_BATCH_SIZE="2",
        MT3_NOTEBOOK_EXAMPLE_SECONDS="2.5",
    )
    work = tmp_path / "mt3-finetune"
    assert (work / "run" / "config.json").is_file()
    before = json.loads((work / "before" / "scores.json").read_text())
    after = json.loads((work / "after" / "scores.json").read_text())
    assert (
        before["split"] == after["split"]
        and before["recordings"].keys() == after["recordings"].keys()
    )
    assert "released fine-tuned" in text and "Onset F1" in text

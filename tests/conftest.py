"""Shared fixtures: where the reference outputs of the original MT3 code live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MT3_SHARED", REPO.parent / "shared"))
GOLDEN = SHARED / "golden"


def golden_dir(name: str) -> Path:
    """A folder of ../shared/golden; skips (saying why) when the shared folder is absent."""
    path = GOLDEN / name
    if not path.is_dir():
        pytest.skip(f"golden files not found at {path} (set MT3_SHARED to the shared folder)")
    return path


@pytest.fixture
def run_cli(capsys):
    """Run the mt3 console script in-process; returns (exit status, stdout, stderr)."""
    from mt3.cli.main import main

    def run(*args: str):
        status = main([str(a) for a in args])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run

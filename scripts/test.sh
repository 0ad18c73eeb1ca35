#!/usr/bin/env bash
# Install everything (scripts/setup.sh), lint, then run the default (fast) test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m slow` for the slow tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check mt3 tests benchmarks
.venv/bin/ruff format --check mt3 tests benchmarks
.venv/bin/python -m pytest "$@"

"""Raw-dataset readers. Each module of this package declares its datasets, and nothing else needs
to know them: `mt3 prepare` takes its names and options from here, the named training mixtures
and the paper table are assembled from the declarations.

A module defines ``DATASETS``, a tuple of :class:`Dataset`: the name, a one-line summary, its
``prepare`` options, its splits, its role in the named mixtures and, for the datasets of MT3's
paper, which split the paper reports. A dataset's ``find_recordings(raw, **options)`` checks the
whole raw layout first and raises DatasetLayoutError listing what is missing;
``load_record(item)`` turns one recording into a Record.

Split lists and metadata tables (MT3's MusicNet split, URMP's instrument codes, Slakh's
instrument classes, the paper's numbers) are data files in the repository's top-level
``datasets/`` folder, ``datasets/<name>.toml``, read with :func:`dataset_table`.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import pkgutil
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mt3.audio import load_audio
from mt3.data.records import audio_to_int16
from mt3.errors import Mt3Error

TABLES_DIR = Path(__file__).resolve().parents[3] / "datasets"


class DatasetLayoutError(Mt3Error, ValueError):
    """A raw dataset folder that does not have the release's layout."""


@dataclasses.dataclass(frozen=True)
class RawItem:
    """One recording of a raw release: where its files are and which split it belongs to."""

    id: str
    split: str
    paths: dict
    metadata: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Option:
    """A ``prepare`` option: keyword ``name`` of ``find_recordings``, flag ``--name``."""

    name: str
    help: str
    default: Any = None
    type: Callable = str
    choices: tuple | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


SKIP_INCOMPLETE = Option(
    "skip_incomplete", "leave out recordings with missing files (warned) instead of failing",
    default=False, type=bool,
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Dataset:
    """One dataset `mt3 prepare` can build.

    Attributes:
      name: what `mt3 prepare NAME` and the manifest call it.
      summary: one line for `mt3 prepare --help`.
      find_recordings, load_record: the reader (see the package docstring).
      options: the ``prepare`` options it takes, passed to ``find_recordings``.
      fixed: keywords always passed to ``find_recordings`` (e.g. the kind of a generated set).
      splits: the splits it has.
      needs_raw: whether it reads a raw release (``--raw``); generated sets do not.
      mixtures: (mixture name, position) for each named training mixture it belongs to; the
        position orders the mixture's datasets (it decides which draws a seed makes).
      paper_split: the split MT3's paper reports for it (None: not in the paper's tables).
    """

    name: str
    summary: str
    find_recordings: Callable[..., list[RawItem]]
    load_record: Callable[[RawItem], Any]
    options: tuple[Option, ...] = (SKIP_INCOMPLETE,)
    fixed: dict = dataclasses.field(default_factory=dict)
    splits: tuple[str, ...] = ("train", "validation", "test")
    needs_raw: bool = True
    mixtures: tuple[tuple[str, int], ...] = ()
    paper_split: str | None = None


@functools.cache
def registry() -> dict[str, Dataset]:
    """Every dataset of this package's modules, by name, in module order."""
    found = {}
    for module_info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for dataset in getattr(module, "DATASETS", ()):
            found[dataset.name] = dataset
    return found


def get_dataset(name: str) -> Dataset:
    datasets = registry()
    if name not in datasets:
        raise DatasetLayoutError(f"unknown dataset {name!r}; choose one of {', '.join(datasets)}")
    return datasets[name]


@functools.cache
def mixtures() -> dict[str, tuple[str, ...]]:
    """Named training mixtures: the datasets (prepared under a data root, each in the folder
    named after it) that each draws from, in their declared order."""
    members: dict[str, list[tuple[int, str]]] = {}
    for dataset in registry().values():
        for mixture, position in dataset.mixtures:
            members.setdefault(mixture, []).append((position, dataset.name))
    return {name: tuple(n for _, n in sorted(found)) for name, found in members.items()}


@functools.cache
def dataset_table(name: str) -> dict:
    """``datasets/<name>.toml``: a dataset's split lists and metadata tables."""
    path = TABLES_DIR / f"{name}.toml"
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise DatasetLayoutError(f"{path}: cannot read the {name} tables ({error})") from None


def require_folder(raw: Path, name: str) -> Path:
    raw = Path(raw)
    if not raw.is_dir():
        raise DatasetLayoutError(f"{raw}: no such folder (the unpacked {name} release)")
    return raw


def report_missing(raw: Path, name: str, missing, skip_incomplete: bool = False) -> set[str]:
    """``missing``: (recording id, file) pairs. Raise one error naming the files (the first ten,
    and how many in all), or with ``skip_incomplete`` warn and return the ids to leave out."""
    if not missing:
        return set()
    shown = "; ".join(f for _, f in missing[:10])
    shown += f"; and {len(missing) - 10} more" if len(missing) > 10 else ""
    ids = {recording for recording, _ in missing}
    if not skip_incomplete:
        raise DatasetLayoutError(
            f"{raw}: {len(missing)} file(s) of the {name} layout missing: {shown} "
            "(pass --skip-incomplete to prepare the complete recordings only)"
        )
    print(f"warning: {raw}: skipping {len(ids)} incomplete recording(s); missing: {shown}",
          file=sys.stderr)  # fmt: skip
    return ids


def load_int16(path: Path) -> np.ndarray:
    """16 kHz mono int16 audio of a file (resampled and mixed down as for transcription)."""
    return audio_to_int16(load_audio(path))

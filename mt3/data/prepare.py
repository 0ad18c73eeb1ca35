"""`mt3 prepare`: a raw public release (or your own folder) -> record shards per split.

The raw layout is checked in full before anything is written. Recordings are sorted by id and cut
into shards of ``records_per_shard``; each shard is written to a temporary name and renamed when
complete, so an interrupted run resumes by skipping finished shards. Shards are built in parallel
worker processes. A manifest (``MANIFEST_FILE``) with counts, hours and programs per split is
written last; it also lists every record's id and length in samples, in shard order, so that
readers can plan crops without opening the audio.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
import os
import sys
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from mt3.atomic import atomic_write_text
from mt3.data.datasets import DatasetLayoutError, RawItem, get_dataset
from mt3.data.records import MANIFEST_FILE, SHARD_SUFFIX, read_shard, write_shard

RECORDS_PER_SHARD = 8
BUILDING_FILE = ".building.json"  # what an unfinished prepare builds (its fingerprint)


def _plain(value):
    """Options and item metadata as JSON-able values (paths as strings)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, Path) else value


def _files(value) -> list[Path]:
    if isinstance(value, Path):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list | tuple):
        return [p for v in value for p in _files(v)]
    return []


def _fingerprint(build: dict, items) -> str:
    """sha256 of what a dataset is built from: the options, and every recording's id, split and
    input files (path, size, modification time), so a changed raw file is noticed."""
    digest = hashlib.sha256(json.dumps(build, sort_keys=True).encode())
    for item in sorted(items, key=lambda i: i.id):
        files = [(str(p), *((s.st_size, s.st_mtime_ns) if (s := _stat(p)) else ()))
                 for p in _files([item.paths, item.metadata])]  # fmt: skip
        digest.update(json.dumps([item.id, item.split, files]).encode())
    return digest.hexdigest()


def _stat(path: Path):
    try:
        return path.stat() if path.is_file() else None
    except OSError:
        return None


def _claim(out: Path, build: dict, fingerprint: str, overwrite: bool) -> None:
    """Make ``out`` ours for this build: resume one of the same fingerprint; refuse (or, with
    ``overwrite``, clear) one built from other inputs or options."""
    found = None
    for name in (BUILDING_FILE, MANIFEST_FILE):
        if (out / name).is_file():
            try:
                found = json.loads((out / name).read_text())
            except ValueError:
                found = {}
            break
    shards = sorted(out.glob(f"*/*{SHARD_SUFFIX}")) if out.is_dir() else []
    if (found is None and not shards) or (found or {}).get("fingerprint") == fingerprint:
        pass
    elif not overwrite:
        was = (found or {}).get("options")
        change = (f"options {was} (now {build['options']})" if was not in (None, build["options"])
                  else "other input files" if (found or {}).get("fingerprint")
                  else "unknown inputs (no fingerprint: an older mt3?)")  # fmt: skip
        raise DatasetLayoutError(
            f"{out}: holds a dataset prepared from {change}; give another --out, or pass "
            "--overwrite to rebuild it"
        )
    else:
        for path in shards:
            path.unlink()
        (out / MANIFEST_FILE).unlink(missing_ok=True)
    atomic_write_text(out / BUILDING_FILE, json.dumps({**build, "fingerprint": fingerprint}))


@dataclasses.dataclass(frozen=True)
class ShardJob:
    dataset: str
    path: Path
    items: tuple[RawItem, ...]


def _build_shard(job: ShardJob) -> list[dict]:
    load_record = get_dataset(job.dataset).load_record
    stats = []

    def records():
        for item in job.items:
            record = load_record(item)
            check_lengths(record)
            stats.append(_stats(record))
            yield record

    write_shard(job.path, records())
    return stats


def check_lengths(record) -> None:
    """Notes that run far past the end of the audio mean a truncated or mismatched file (a 2 s
    recording paired with 698 s of MIDI, as in the MAESTRO sample files): warn, naming it."""
    end = record.notes.end_time
    if end > record.seconds * 1.1 + 5.0:
        print(f"warning: {record.id}: its notes run to {end:.1f} s but its audio lasts "
              f"{record.seconds:.1f} s (a truncated or mismatched audio file?)",
              file=sys.stderr, flush=True)  # fmt: skip


def _stats(record) -> dict:
    notes = record.notes
    return {
        "id": record.id,
        "samples": int(record.audio.shape[-1]),
        "seconds": record.seconds,
        "notes": len(notes),
        "programs": sorted(set(notes.program[~notes.is_drum].tolist())),
        "drums": int(notes.is_drum.sum()),
    }


def plan_shards(dataset: str, items, out: Path, records_per_shard: int) -> list[ShardJob]:
    jobs = []
    for split in sorted({item.split for item in items}):
        chosen = sorted((i for i in items if i.split == split), key=lambda i: i.id)
        count = -(-len(chosen) // records_per_shard)
        for index in range(count):
            group = tuple(chosen[index * records_per_shard : (index + 1) * records_per_shard])
            path = out / split / f"{split}-{index:05d}-of-{count:05d}{SHARD_SUFFIX}"
            jobs.append(ShardJob(dataset, path, group))
    return jobs


def prepare(
    dataset: str,
    raw: str | os.PathLike | None,
    out: str | os.PathLike,
    *,
    workers: int | None = None,
    records_per_shard: int = RECORDS_PER_SHARD,
    progress: bool = True,
    overwrite: bool = False,
    **options,
) -> dict:
    """Build ``out/<split>/*.array_record`` and ``out/manifest.json``; returns the manifest.

    Running it again on the same inputs with the same options resumes (finished shards are
    kept). A folder prepared from other inputs or options is an error before any work, unless
    ``overwrite``, which deletes that folder's shards and manifest and builds it anew.
    """
    reader = get_dataset(dataset)
    options = {**options, **reader.fixed}
    items = reader.find_recordings(None if raw is None else Path(raw), **options)
    out = Path(out)
    given = _plain({k: v for k, v in options.items() if v is not None})
    build = {"dataset": dataset, "options": given, "records_per_shard": records_per_shard}
    fingerprint = _fingerprint(build, items)
    _claim(out, build, fingerprint, overwrite)
    jobs = plan_shards(dataset, items, out, records_per_shard)
    todo = [job for job in jobs if not job.path.is_file()]
    bar = tqdm(total=len(items), unit="rec", desc=f"prepare {dataset}", disable=not progress)
    bar.update(len(items) - sum(len(job.items) for job in todo))
    per_shard = {}
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    pool = multiprocessing.get_context("spawn").Pool(workers) if workers > 1 else None
    try:
        results = pool.imap(_build_shard, todo) if pool else map(_build_shard, todo)
        for job, stats in zip(todo, results):
            per_shard[job.path] = stats
            bar.update(len(job.items))
    except BaseException:
        bar.leave = False  # clear the bar so that the error stands on its own line
        raise
    finally:
        bar.close()
        if pool:
            pool.terminate()
            pool.join()
    for job in jobs:  # shards finished by an earlier run: read their stats back
        if job.path not in per_shard:
            per_shard[job.path] = [_stats(record) for record in read_shard(job.path)]
    manifest = _manifest(dataset, raw, jobs, per_shard, options)
    manifest["fingerprint"] = fingerprint
    atomic_write_text(out / MANIFEST_FILE, json.dumps(manifest, indent=1) + "\n")
    (out / BUILDING_FILE).unlink(missing_ok=True)
    return manifest


def _manifest(dataset, raw, jobs, per_shard, options) -> dict:
    splits = {}
    for job in jobs:
        split = job.path.parent.name
        entry = splits.setdefault(
            split,
            {
                "recordings": 0,
                "hours": 0.0,
                "notes": 0,
                "drum_notes": 0,
                "shards": [],
                "records": [],
            },
        )
        programs = entry.setdefault("programs", Counter())
        for stats in per_shard[job.path]:
            entry["recordings"] += 1
            entry["hours"] += stats["seconds"] / 3600
            entry["notes"] += stats["notes"]
            entry["drum_notes"] += stats["drums"]
            programs.update(stats["programs"])
            entry["records"].append([stats["id"], stats["samples"]])
        entry["shards"].append(str(job.path.relative_to(job.path.parents[1])))
    for entry in splits.values():
        entry["hours"] = round(entry["hours"], 4)
        entry["programs"] = {str(k): v for k, v in sorted(entry["programs"].items())}
    options = {k: v for k, v in options.items() if v is not None}
    return {"dataset": dataset, "raw": str(raw), "options": options, "splits": splits}

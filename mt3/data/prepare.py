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
import json
import multiprocessing
import os
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from mt3.atomic import atomic_write_text
from mt3.data.datasets import RawItem, get_dataset
from mt3.data.records import MANIFEST_FILE, SHARD_SUFFIX, read_shard, write_shard

RECORDS_PER_SHARD = 8


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
            stats.append(_stats(record))
            yield record

    write_shard(job.path, records())
    return stats


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
    **options,
) -> dict:
    """Build ``out/<split>/*.array_record`` and ``out/manifest.json``; returns the manifest."""
    reader = get_dataset(dataset)
    options = {**options, **reader.fixed}
    items = reader.find_recordings(None if raw is None else Path(raw), **options)
    out = Path(out)
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
    atomic_write_text(out / MANIFEST_FILE, json.dumps(manifest, indent=1) + "\n")
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

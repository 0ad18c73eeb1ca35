"""Cerberus4 (docs/mt3.md §4.6), built from a Slakh2100 release: for every track, every combination
of exactly one piano, one guitar, one bass and one drums stem becomes a recording (the sum of the
four stems), with MT3's fixed programs: piano 0, guitar 24, bass 32, drums. The roles follow
mirdata's Slakh groups (piano = GM programs 0-7, guitar 24-31, bass 32-39, drums = drum stems);
how MT3 assigned them is not documented. Tracks lacking a role are skipped."""

from __future__ import annotations

import itertools

from mt3.data.datasets import Dataset, RawItem, dataset_table
from mt3.data.datasets.slakh import build_record, find_tracks
from mt3.data.records import Record

ROLES = tuple(
    (role["name"], range(role["programs"][0], role["programs"][1] + 1), role["program"])
    for role in dataset_table("cerberus4")["roles"]
)  # (name, stem programs, MT3 program) of piano, guitar and bass; drums are the drum stems


def _candidates(stems: list[dict]):
    by_role = [
        [s for s in stems if not s["is_drum"] and s["program_num"] in r] for _, r, _ in ROLES
    ]
    return by_role + [[s for s in stems if s["is_drum"]]]


def find_recordings(raw, skip_incomplete: bool = False, **_) -> list[RawItem]:
    items = []
    for folder, split, stems in find_tracks(raw, skip_incomplete):
        for combination in itertools.product(*_candidates(stems)):
            record_id = folder.name + "_" + "_".join(s["name"] for s in combination)
            items.append(
                RawItem(record_id, split, {"folder": folder}, {"stems": list(combination)})
            )
    return items


def load_record(item: RawItem) -> Record:
    programs = [program for _, _, program in ROLES] + [0]
    return build_record(item.id, item.split, item.metadata["stems"], "cerberus4", programs)


DATASETS = (
    Dataset("cerberus4", "piano + guitar + bass + drums stem combinations of a Slakh2100 release",
            find_recordings, load_record, mixtures=(("mt3", 4),), paper_split="test"),
)  # fmt: skip

"""`mt3 prepare` on the real release samples (../shared/dataset_samples) and on fake trees built in
the exact public layouts."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile

from mt3.data.datasets import DatasetLayoutError
from mt3.data.datasets.guitarset import read_jams_notes, split_of
from mt3.data.prepare import prepare
from mt3.data.records import Record, decode_record, encode_record, read_shard, shard_paths
from mt3.notes import Notes, read_midi, write_midi


def test_record_round_trip():
    notes = Notes.from_records([{"start": 0.5, "end": 1.0, "pitch": 60, "program": 33}])
    record = Record("x", np.arange(-5, 5, dtype=np.int16), notes, {"split": "train"})
    back = decode_record(encode_record(record))
    assert back.id == "x" and back.metadata == {"split": "train"} and back.notes == notes
    np.testing.assert_array_equal(back.audio, record.audio)


def test_maestro_release_sample(samples, tmp_path, run_cli):
    raw = samples("maestro")
    status, out, err = run_cli("prepare", "maestro", "--raw", raw, "--out", tmp_path / "data")
    assert status == 0, err
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert manifest["splits"]["train"]["recordings"] == 1
    [record] = list(read_shard(shard_paths(tmp_path / "data" / "train")[0]))
    midi = next(raw.glob("2018/*.midi"))
    assert record.id == midi.stem and record.metadata["canonical_composer"] == "Alban Berg"
    assert record.audio.dtype == np.int16 and record.audio.size == 2 * 16000  # 48 kHz stereo in
    assert record.notes == read_midi(midi).notes


@pytest.mark.parametrize("form", ["v3-json", "csv"])
def test_maestro_metadata_forms(samples, tmp_path, form):
    raw = samples("maestro")
    tree = tmp_path / "maestro-v3.0.0"
    shutil.copytree(raw / "2018", tree / "2018")
    [row] = json.loads((raw / "maestro-v2.0.0.json").read_text())
    rows = [row, dict(row, split="test")]
    rows[1]["midi_filename"] = "2018/copy.midi"
    rows[1]["audio_filename"] = "2018/copy.wav"
    shutil.copy(tree / row["midi_filename"], tree / "2018/copy.midi")
    shutil.copy(tree / row["audio_filename"], tree / "2018/copy.wav")
    if form == "csv":
        import csv

        with open(tree / "maestro-v3.0.0.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            writer.writeheader()
            writer.writerows(rows)
    else:  # v3: one object per field, keyed by row number
        columns = {key: {str(i): r[key] for i, r in enumerate(rows)} for key in row}
        (tree / "maestro-v3.0.0.json").write_text(json.dumps(columns))
    manifest = prepare("maestro", tree, tmp_path / "out", workers=1, progress=False)
    assert {s: e["recordings"] for s, e in manifest["splits"].items()} == {"train": 1, "test": 1}


def test_missing_files_are_named_and_nothing_is_written(samples, tmp_path, run_cli):
    raw = samples("maestro")
    tree = tmp_path / "raw"
    shutil.copytree(raw, tree)
    next(tree.glob("2018/*.wav")).unlink()
    status, _, err = run_cli("prepare", "maestro", "--raw", tree, "--out", tmp_path / "out")
    assert status == 2 and "1 file(s) of the MAESTRO layout missing: 2018/MIDI-Unprocessed" in err
    assert not (tmp_path / "out").exists()
    status, _, err = run_cli(
        "prepare", "maestro", "--raw", tmp_path / "nope", "--out", tmp_path / "o"
    )
    assert status == 2 and "no such folder" in err


def test_guitarset_release_sample(samples, tmp_path):
    raw = samples("guitarset")
    tree = tmp_path / "GuitarSet"
    shutil.copytree(raw, tree)
    with pytest.raises(DatasetLayoutError, match="00_BN1-129-Eb_comp_mic.wav"):
        prepare("guitarset", tree, tmp_path / "out", workers=1, progress=False)
    (tree / "annotation" / "00_BN1-129-Eb_comp.jams").unlink()
    manifest = prepare("guitarset", tree, tmp_path / "out", workers=1, progress=False)
    assert list(manifest["splits"]) == ["validation"]  # progression 3
    [record] = list(read_shard(shard_paths(tmp_path / "out" / "validation")[0]))
    assert set(record.notes.program.tolist()) == {24}
    expected = read_jams_notes(tree / "annotation" / "03_BN3-119-G_solo.jams")
    assert record.notes == expected and len(expected) == 6
    assert split_of("00_BN1-129-Eb_comp") == "train" and split_of("05_Jazz2-187-F#_solo") == "train"


def test_folder_dataset_resume_and_parallel(write_pair, tmp_path):
    raw = tmp_path / "mine"
    for index in range(5):
        write_pair(raw / ("sub" if index % 2 else ""), f"take{index}", program=index)
    first = prepare("folder", raw, tmp_path / "a", workers=1, records_per_shard=2, progress=False)
    assert first["splits"]["train"]["recordings"] == 5
    shards = shard_paths(tmp_path / "a" / "train")
    assert len(shards) == 3
    stamps = {p: p.stat().st_mtime_ns for p in shards}
    shards[1].unlink()  # an interrupted run: one shard never finished
    again = prepare("folder", raw, tmp_path / "a", workers=1, records_per_shard=2, progress=False)
    assert again == first
    assert all(p.stat().st_mtime_ns == stamps[p] for p in (shards[0], shards[2]))
    parallel = prepare(
        "folder", raw, tmp_path / "b", workers=2, records_per_shard=2, progress=False
    )
    assert parallel["splits"] == first["splits"]
    for a, b in zip(shards, shard_paths(tmp_path / "b" / "train")):
        for x, y in zip(read_shard(a), read_shard(b)):
            assert x.id == y.id and x.notes == y.notes and np.array_equal(x.audio, y.audio)


def test_folder_auto_split_and_missing_midi(write_pair, tmp_path):
    raw = tmp_path / "mine"
    for index in range(20):
        write_pair(raw, f"t{index:02d}", seconds=0.2)
    manifest = prepare(
        "folder", raw, tmp_path / "out", workers=1, progress=False, split="auto",
        validation_fraction=0.3,
    )  # fmt: skip
    counts = {s: e["recordings"] for s, e in manifest["splits"].items()}
    assert sum(counts.values()) == 20 and 0 < counts["validation"] < 20
    soundfile.write(raw / "orphan.wav", np.zeros(1000), 16000)
    with pytest.raises(DatasetLayoutError, match=r"orphan.mid \(for orphan.wav\)"):
        prepare("folder", raw, tmp_path / "out2", workers=1, progress=False)


def write_tone(path, seconds=0.5, rate=44100):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(path, 0.1 * np.sin(2 * np.pi * 440 * t), rate)


def test_musicnet_layout_split_and_labels(tmp_path):
    raw = tmp_path / "musicnet"
    header = "start_time,end_time,instrument,note,start_beat,end_beat,note_value\n"
    for folder, rid in [("train", "2336"), ("train", "1727"), ("test", "1759"), ("train", "2118")]:
        write_tone(raw / f"{folder}_data" / f"{rid}.wav")
        rows = "4410,22050,41,67,0,1,Quarter\n0,8820,1,48,0,0.5,Eighth\n"
        (raw / f"{folder}_labels").mkdir(parents=True, exist_ok=True)
        (raw / f"{folder}_labels" / f"{rid}.csv").write_text(header + rows)
    manifest = prepare("musicnet", raw, tmp_path / "out", workers=1, progress=False)
    counts = {s: e["recordings"] for s, e in manifest["splits"].items()}
    assert counts == {"train": 2, "validation": 1, "test": 1}  # 1759 (official test) -> train
    record = next(
        r for r in read_shard(shard_paths(tmp_path / "out" / "train")[0]) if r.id == "1759"
    )
    assert record.notes.to_records() == [
        {"start": 0.0, "end": 0.2, "pitch": 48, "velocity": 100, "program": 0, "is_drum": False},
        {"start": 0.1, "end": 0.5, "pitch": 67, "velocity": 100, "program": 40, "is_drum": False},
    ]
    (raw / "train_labels" / "2336.csv").write_text(header + "10,5,41,67,0,1,Quarter\n")
    with pytest.raises(DatasetLayoutError, match="2336.csv: bad MusicNet label file"):
        prepare("musicnet", raw, tmp_path / "bad", workers=1, progress=False)
    with pytest.raises(DatasetLayoutError, match="musicnet_em folder"):
        prepare("musicnet", raw, tmp_path / "em", workers=1, progress=False, labels="em")
    em = tmp_path / "musicnet_em"
    em.mkdir()
    write_midi(
        Notes.from_records([{"start": 0, "end": 0.3, "pitch": 70, "program": 41}]), em / "2336.mid"
    )
    with pytest.raises(DatasetLayoutError, match="3 file.*1727.mid"):
        prepare("musicnet", raw, tmp_path / "em", workers=1, progress=False, labels="em", em_dir=em)


def test_urmp_layout(tmp_path):
    raw = tmp_path / "URMP"
    for folder, codes in [
        ("01_Jupiter_vn_vc", ["vn", "vc"]),
        ("03_Dance_fl_cl_sax", ["fl", "cl", "sax"]),
    ]:
        number, title = folder.split("_")[:2]
        write_tone(raw / folder / f"AuMix_{folder}.wav", rate=48000)
        for k, code in enumerate(codes, start=1):
            (raw / folder / f"Notes_{k}_{code}_{number}_{title}.txt").write_text(
                "0.10\t440.0\t0.50\n0.70\t261.63\t0.20\n"
            )
    (raw / "Supplementary_Files").mkdir()
    manifest = prepare("urmp", raw, tmp_path / "out", workers=1, progress=False)
    assert {s: e["recordings"] for s, e in manifest["splits"].items()} == {
        "train": 1,
        "validation": 1,
    }
    [record] = list(read_shard(shard_paths(tmp_path / "out" / "train")[0]))
    assert record.id == "03_Dance_fl_cl_sax" and sorted(set(record.notes.program.tolist())) == [
        64,
        71,
        73,
    ]
    assert sorted(set(record.notes.pitch.tolist())) == [60, 69]
    (raw / "01_Jupiter_vn_vc" / "Notes_2_vc_01_Jupiter.txt").unlink()
    with pytest.raises(DatasetLayoutError, match="01_Jupiter_vn_vc/Notes_2_vc_"):
        prepare("urmp", raw, tmp_path / "out2", workers=1, progress=False)


@pytest.mark.parametrize("release", ["slakh2100_flac_redux/train", "babyslakh_16k"])
def test_slakh_release_samples(slakh_tree, tmp_path, release):
    from mt3.data.datasets.slakh import CLASS_PROGRAM, read_metadata

    raw = slakh_tree(release)
    manifest = prepare("slakh", raw, tmp_path / "out", workers=1, progress=False)
    assert manifest["splits"]["train"]["recordings"] == 1  # Track00001 is in train either way
    [record] = list(read_shard(shard_paths(tmp_path / "out" / "train")[0]))
    folder = next(raw.rglob("Track00001"))
    stems = read_metadata(folder / "metadata.yaml")["stems"]
    used = sorted(p.stem for p in (folder / "MIDI").glob("S*.mid"))
    assert [s["name"] for s in record.metadata["stems"]] == used and "S06" not in used
    assert record.stems.shape[0] == len(used) and record.note_stems.shape == (len(record.notes),)
    np.testing.assert_allclose(record.stems.astype(int).sum(0), record.audio, atol=1)
    for index, name in enumerate(used):  # each stem's notes carry the stem's class program
        mine = record.notes.select(record.note_stems == index)
        if stems[name]["is_drum"]:
            assert mine.is_drum.all()
        else:
            assert set(mine.program.tolist()) == {int(CLASS_PROGRAM[stems[name]["program_num"]])}
    assert CLASS_PROGRAM[30] == 29 and CLASS_PROGRAM[1] == 0 and CLASS_PROGRAM[33] == 33


def test_slakh_incomplete_track_is_named(slakh_tree, tmp_path):
    raw = slakh_tree()
    (raw / "train" / "Track00001" / "MIDI" / "S02.mid").unlink()
    with pytest.raises(DatasetLayoutError, match="Track00001/MIDI/S02.mid"):
        prepare("slakh", raw, tmp_path / "out", workers=1, progress=False)


def test_slakh_trims_overlaps():
    from mt3.data.datasets.slakh import trim_overlapping_notes

    notes = Notes.from_records(
        [
            {"start": 0.0, "end": 1.0, "pitch": 60},
            {"start": 0.5, "end": 0.8, "pitch": 60},
            {"start": 0.5, "end": 2.0, "pitch": 60, "program": 33},
            {"start": 0.5, "end": 1.0, "pitch": 60},  # same onset as the previous program-0 note
        ]
    )
    trimmed, keep = trim_overlapping_notes(notes)
    assert keep.tolist() == [True, False, True, True]
    assert trimmed.end.tolist() == [0.5, 2.0, 1.0]


def test_cerberus4_combinations(slakh_tree, tmp_path):
    raw = slakh_tree()
    manifest = prepare("cerberus4", raw, tmp_path / "out", workers=1, progress=False)
    records = [r for p in shard_paths(tmp_path / "out" / "train") for r in read_shard(p)]
    assert manifest["splits"]["train"]["recordings"] == len(records) >= 1
    for record in records:
        assert record.stems.shape[0] == 4 and len(record.metadata["stems"]) == 4
        assert set(record.notes.program[~record.notes.is_drum].tolist()) <= {0, 24, 32}
        assert record.notes.is_drum.any()


@pytest.mark.parametrize("kind", ["piano", "ensemble", "band", "chorales"])
def test_synthetic_datasets(tmp_path, kind, run_cli):
    from mt3.data.synth import generate_piece

    status, out, err = run_cli(
        "prepare", f"synth-{kind}", "--out", tmp_path / "a", "--count", "10", "--seconds", "8",
        "--workers", "1",
    )  # fmt: skip
    assert status == 0, err
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert {s: e["recordings"] for s, e in manifest["splits"].items()} == {
        "train": 8, "validation": 1, "test": 1,
    }  # fmt: skip
    records = [r for split in ("train", "validation", "test")
               for p in shard_paths(tmp_path / "a" / split) for r in read_shard(p)]  # fmt: skip
    for record in records:
        assert 0 < np.abs(record.audio).max() < 32767  # audible, not clipped
        assert record.notes.end.max() <= record.seconds
        melodic = set(record.notes.program[~record.notes.is_drum].tolist())
        assert (kind == "band") == bool(record.notes.is_drum.any())
        assert melodic and (kind != "piano" or max(melodic) < 8)
        assert kind != "ensemble" or 2 <= len(melodic) <= 4
        assert kind != "chorales" or len(melodic) <= 4
    assert generate_piece(kind, 5, 8.0) == generate_piece(kind, 5, 8.0)
    assert not generate_piece(kind, 5, 8.0) == generate_piece(kind, 6, 8.0)
    status, _, _ = run_cli("prepare", f"synth-{kind}", "--out", tmp_path / "b", "--count", "10",
                           "--seconds", "8", "--workers", "1")  # fmt: skip
    again = [r for p in shard_paths(tmp_path / "b" / "train") for r in read_shard(p)]
    assert all(np.array_equal(a.audio, b.audio) for a, b in zip(records, again))


def test_prepare_needs_raw_for_real_datasets(tmp_path, run_cli):
    status, _, err = run_cli("prepare", "maestro", "--out", tmp_path / "x")
    assert status == 2 and "maestro needs --raw" in err


def test_unreadable_audio_is_named_and_finished_shards_stay(write_pair, tmp_path, run_cli):
    raw = tmp_path / "mine"
    for index in range(4):
        write_pair(raw, f"take{index}")
    (raw / "take3.flac").write_bytes(b"fLaC not really")
    status, _, err = run_cli(
        "prepare", "folder", "--raw", raw, "--out", tmp_path / "out", "--workers", "1"
    )
    last = err.strip().splitlines()[-1]
    assert status == 2 and "take3.flac: cannot decode audio" in last
    assert last.startswith("mt3 prepare: error: ")
    leftovers = [p.name for p in (tmp_path / "out" / "train").iterdir()]
    assert all(not name.startswith(".") for name in leftovers)  # no half-written shard


def test_full_split_layouts(samples, tmp_path):
    """Fake trees with every split: GuitarSet progressions, Slakh split folders (+ omitted)."""
    from mt3.data.datasets import get_dataset

    gs = tmp_path / "GuitarSet"
    sample = next((samples("guitarset") / "annotation").glob("03_*.jams"))
    for excerpt in ("00_BN1-129-Eb_comp", "01_Funk2-108-Eb_solo", "05_SS3-98-C_comp"):
        (gs / "annotation").mkdir(parents=True, exist_ok=True)
        shutil.copy(sample, gs / "annotation" / f"{excerpt}.jams")
        write_tone(gs / "audio_mono-mic" / f"{excerpt}_mic.wav")
    items = get_dataset("guitarset").find_recordings(gs)
    assert [i.split for i in items] == ["train", "train", "validation"]

    track = samples("slakh") / "slakh2100_flac_redux" / "train" / "Track00001"
    slakh = tmp_path / "slakh2100_flac_redux"
    for split, name in [("train", "Track00001"), ("validation", "Track01501"),
                        ("test", "Track01876"), ("omitted", "Track00002")]:  # fmt: skip
        shutil.copytree(track, slakh / split / name)
    items = get_dataset("slakh").find_recordings(slakh)
    assert sorted((i.id, i.split) for i in items) == [
        ("Track00001", "train"), ("Track01501", "validation"), ("Track01876", "test"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    "dataset, sample, expected",
    [
        ("maestro", "maestro", {"train": 1}),
        ("slakh", "slakh/slakh2100_flac_redux", {"train": 1}),
        ("slakh", "slakh/babyslakh_16k", {"train": 1}),  # Track00007 holds only one MIDI file
        ("guitarset", "guitarset", {"validation": 1}),  # 00_BN1 has no audio in the sample
    ],
)
def test_release_samples_as_they_are(samples, dataset, sample, expected, tmp_path, run_cli):
    raw = samples(sample.split("/")[0]) / "/".join(sample.split("/")[1:])
    status, out, err = run_cli(
        "prepare", dataset, "--raw", raw, "--out", tmp_path / "out", "--skip-incomplete",
        "--workers", "1",
    )  # fmt: skip
    assert status == 0, err
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert {s: e["recordings"] for s, e in manifest["splits"].items()} == expected

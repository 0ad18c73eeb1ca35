"""The training input: crops, targets, sub-mixes, determinism, resumable iterators, mixtures."""

from __future__ import annotations

import numpy as np
import pytest

from mt3.config import VARIANTS, DataConfig
from mt3.data.pipeline import (
    PipelineError,
    SplitSource,
    crop_example,
    mixture_weights,
    submix,
    training_dataset,
    training_mixture,
)
from mt3.data.prepare import prepare
from mt3.events import TokenEncoder

MT3 = VARIANTS["mt3"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, write_pair):
    root = tmp_path_factory.mktemp("data")
    raw = root / "raw"
    for index in range(3):
        write_pair(raw, f"take{index}", seconds=3.0 + 2 * index, program=8 * index)
    prepare("folder", raw, root / "folder", workers=1, progress=False)
    small = root / "raw_small"
    write_pair(small, "single", seconds=1.0, program=40)
    prepare("folder", small, root / "small", workers=1, progress=False)
    return root


def test_pieces_and_examples(prepared):
    source = SplitSource(prepared / "folder", "train")
    assert len(source) == 3
    pieces = source.pieces()
    assert pieces[:, 2].max() <= 2000 and pieces[:, 0].tolist() == [0, 1, 2]
    dataset = training_dataset([source], MT3, DataConfig())
    for index in range(20):
        example = dataset[index]
        assert example["audio"].shape == (32768,) and example["targets"].shape == (1024,)
        valid = int(example["num_valid_frames"])
        assert 1 <= valid <= 256
        assert np.all(example["audio"][valid * 128 :] == 0)
        tokens = example["targets"][example["targets"] > 0]
        assert tokens[-1] == 1 and 1134 in tokens  # ties on: every segment has a tie section


def test_crop_targets_are_the_codecs(prepared):
    source = SplitSource(prepared / "folder", "train")
    record, piece = source[2], source.pieces()[2]
    for seed in range(5):
        example = crop_example(record, piece, MT3, DataConfig(), np.random.default_rng(seed))
        # Replay the crop: start uniform in [-(L-1), n), clipped into the piece.
        frames = int(piece[2])
        offset = int(np.clip(np.random.default_rng(seed).integers(-255, frames), 0, frames - 1))
        start, end = int(piece[1]) + offset, int(piece[1]) + min(offset + 256, frames)
        assert int(example["num_valid_frames"]) == end - start
        expected_audio = record.float_audio()[start * 128 : end * 128]
        np.testing.assert_array_equal(example["audio"][: expected_audio.size], expected_audio)
        total = record.audio.size // 128 + 1
        expected = TokenEncoder(record.notes, "mt3", total).tokens(start, end)
        assert example["targets"][: len(expected)].tolist() == expected
        assert not example["targets"][len(expected) :].any()


def test_determinism_and_resume(prepared):
    source = SplitSource(prepared / "folder", "train")
    config = dict(batch_size=2, seed=7)
    first = iter(training_mixture([source], MT3, DataConfig(), **config))
    batches = [next(first) for _ in range(4)]
    again = iter(training_mixture([source], MT3, DataConfig(), **config))
    assert all(
        np.array_equal(a["targets"], b["targets"])
        for a, b in zip(batches, [next(again) for _ in range(4)])
    )
    resumed = iter(training_mixture([source], MT3, DataConfig(), **config))
    next(resumed), next(resumed)
    state = resumed.get_state()
    fresh = iter(training_mixture([source], MT3, DataConfig(), **config))
    fresh.set_state(state)
    for expected in batches[2:]:
        got = next(fresh)
        assert np.array_equal(got["audio"], expected["audio"])
        assert np.array_equal(got["targets"], expected["targets"])
    other = next(iter(training_mixture([source], MT3, DataConfig(), batch_size=2, seed=8)))
    assert not np.array_equal(other["audio"], batches[0]["audio"])


def test_mixture_rates(prepared):
    from mt3.data.pipeline import piece_stream

    sources = [SplitSource(prepared / "folder", "train"), SplitSource(prepared / "small", "train")]
    weights = mixture_weights([3, 1])
    np.testing.assert_allclose(weights, np.array([3**0.3, 1]) / (3**0.3 + 1))
    stream = piece_stream(sources, DataConfig().temperature, seed=3)
    drawn = np.array([stream[i][0] for i in range(10_000)])
    np.testing.assert_allclose(np.bincount(drawn) / drawn.size, weights, atol=0.02)
    batch = next(iter(training_mixture(sources, MT3, DataConfig(), batch_size=16)))
    assert set(batch["source_id"].tolist()) == {0, 1}


def test_processes_read_the_rows_of_one_global_batch(prepared):
    """Two processes with 2 examples each read, between them, the batches of one process with
    4 (same rows, same crops, same order), and only their own rows."""
    source = SplitSource(prepared / "folder", "train")
    whole = iter(training_mixture([source], MT3, DataConfig(), batch_size=4, seed=5))
    parts = [
        iter(training_mixture([source], MT3, DataConfig(), batch_size=2, seed=5, shard=(p, 2)))
        for p in range(2)
    ]
    for _ in range(3):
        expected = next(whole)
        got = [next(part) for part in parts]
        for key in ("audio", "targets", "num_valid_frames", "source_id"):
            np.testing.assert_array_equal(np.concatenate([g[key] for g in got]), expected[key])
    assert parts[0].get_state() == parts[1].get_state()


def test_slakh_submix(slakh_tree, tmp_path):
    raw = slakh_tree()
    prepare("slakh", raw, tmp_path / "slakh", workers=1, progress=False)
    record = SplitSource(tmp_path / "slakh", "train")[0]
    count = record.stems.shape[0]
    for seed in range(4):
        mixed = submix(record, np.random.default_rng(seed), DataConfig().min_submix_stems)
        replay = np.random.default_rng(seed)
        size = replay.integers(min(4, count), count + 1)
        chosen = np.sort(replay.choice(count, size=size, replace=False))
        assert 4 <= len(chosen) <= count and mixed.stems is None
        expected = np.clip(record.stems[chosen].astype(np.int32).sum(0), -32768, 32767)
        np.testing.assert_array_equal(mixed.audio, expected)
        assert mixed.notes == record.notes.select(np.isin(record.note_stems, chosen))


def test_missing_data_is_a_clear_error(tmp_path):
    with pytest.raises(PipelineError, match="run `mt3 prepare` first"):
        SplitSource(tmp_path, "train")


def test_piece_stream_epochs_and_random_access():
    from mt3.data.pipeline import PieceStream

    pieces = [np.arange(15).reshape(5, 3), np.arange(100, 106).reshape(2, 3)]
    stream = PieceStream(pieces, [0.5, 0.5], seed=1)
    rows = [tuple(stream[i]) for i in range(3 * PieceStream.BLOCK)]
    firsts = [r for r in rows if r[0] == 0][:10]
    assert sorted(firsts[:5]) == sorted(firsts[5:10])  # every epoch visits every piece once
    assert len(set(firsts[:5])) == 5
    fresh = PieceStream(pieces, [0.5, 0.5], seed=1)
    assert tuple(fresh[2 * PieceStream.BLOCK + 17]) == rows[2 * PieceStream.BLOCK + 17]


def test_worker_processes_give_the_same_batches(prepared):
    from mt3.data.pipeline import with_workers

    source = SplitSource(prepared / "folder", "train")
    config = dict(batch_size=2, seed=4)
    local = iter(training_mixture([source], MT3, DataConfig(), **config))
    remote = iter(with_workers(training_mixture([source], MT3, DataConfig(), **config), 1))
    for _ in range(3):
        a, b = next(local), next(remote)
        assert np.array_equal(a["audio"], b["audio"]) and np.array_equal(a["targets"], b["targets"])


def test_named_mixture(tmp_path):
    from mt3.data.pipeline import mixture_sources

    with pytest.raises(PipelineError, match="needs prepared synth-piano, synth-ensemble"):
        mixture_sources("synth", tmp_path)
    for kind in ("piano", "ensemble", "band", "chorales"):
        prepare(f"synth-{kind}", None, tmp_path / f"synth-{kind}", workers=1, progress=False,
                count=10 if kind == "band" else 4, seconds=4.0)  # fmt: skip
    sources = mixture_sources("synth", tmp_path)
    batch = next(iter(training_mixture(sources, MT3, DataConfig(), batch_size=8)))
    assert batch["audio"].shape == (8, 32768) and batch["targets"].shape == (8, 1024)
    with pytest.raises(PipelineError, match="unknown mixture"):
        mixture_sources("mt4", tmp_path)

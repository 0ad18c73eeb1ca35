"""Training and evaluation input with Grain (docs/mt3.md §1.3, §3.1, §4.12; docs/architecture.md).

Training examples follow MT3's pipeline:

1. every recording is cut into pieces of at most 2000 frames (16 s), MT3's cache unit;
2. each time a piece is drawn, one crop of ``segment_frames`` frames starts uniformly in
   [-(L-1), n) and is clipped to the piece, so crops near the edges are shorter (and zero-padded);
3. recordings that keep their stems (Slakh2100) are remixed on the fly: a random subset of at least
   four stems (all of them if fewer), with only those stems' notes;
4. the crop's targets come from the codec (mt3.events): tie section, program granularity, shifts,
   redundant-state removal, EOS; padded with 0 to the decoder length.

A dataset is an endless, shuffled, deterministic sequence (the seed decides every draw and
crop); in multi-host runs each process reads only its rows of every global batch, which are the
ones a single process would read. Its iterator state (``get_state``/``set_state``) is saved with
checkpoints so that a resumed run sees the same batches. Mixtures draw datasets
with rates proportional to n^(1/T), n = pieces per dataset, T = 10/3 by default (MT3's
``mixing_rate_num_examples`` with the cache counted in pieces).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from mt3.audio import HOP_SAMPLES, num_frames
from mt3.config import MIXTURE_TEMPERATURE, DataConfig, ModelConfig
from mt3.data.datasets import mixtures
from mt3.data.records import MANIFEST_FILE, Record, decode_record
from mt3.errors import Mt3Error
from mt3.events import TokenEncoder
from mt3.vocab import EOS_ID

PIECE_FRAMES = 2000  # MT3's MAX_NUM_CACHED_FRAMES


class PipelineError(Mt3Error, ValueError):
    """A data folder without prepared shards, or a bad data setting."""


class SplitSource:
    """Random access to the records of one prepared split (all its shards).

    ``folder`` is where the dataset was prepared (``mt3 prepare ... --out FOLDER``), ``dataset``
    its kind as the manifest says (maestro, folder, synth-piano, ...): a user's ``folder``
    dataset may be prepared into ``data/mine``.
    """

    def __init__(self, folder: str | Path, split: str):
        import grain

        folder = Path(folder)
        manifest_path = folder / MANIFEST_FILE
        if not manifest_path.is_file():
            raise PipelineError(f"{folder}: no {MANIFEST_FILE}; run `mt3 prepare` first")
        manifest = json.loads(manifest_path.read_text())
        if split not in manifest["splits"]:
            raise PipelineError(
                f"{folder}: no {split!r} split (has {', '.join(manifest['splits'])})"
            )
        entry = manifest["splits"][split]
        paths = [folder / shard for shard in entry["shards"]]  # the manifest's, no other file
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise PipelineError(
                f"{missing[0]}: a shard of the manifest is missing; re-run `mt3 prepare`"
            )
        self.folder, self.dataset, self.split = folder, manifest["dataset"], split
        self.name = f"{folder.name}/{split}"
        self.ids = [record_id for record_id, _ in entry["records"]]
        self.samples = np.array([samples for _, samples in entry["records"]], np.int64)
        self._source = grain.sources.ArrayRecordDataSource([str(p) for p in paths])

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> Record:
        return decode_record(self._source[index])

    def pieces(self) -> np.ndarray:
        """int64 [P, 3]: (record index, first frame, frames) of every 2000-frame piece."""
        rows = []
        for index, samples in enumerate(self.samples):
            frames = num_frames(int(samples))
            for first in range(0, frames, PIECE_FRAMES):
                rows.append((index, first, min(PIECE_FRAMES, frames - first)))
        return np.array(rows, np.int64).reshape(-1, 3)


def submix(record: Record, rng: np.random.Generator, min_stems: int) -> Record:
    """A random subset of at least ``min_stems`` stems (all if fewer): summed audio, their
    notes."""
    count = record.stems.shape[0]
    size = rng.integers(min(min_stems, count), count + 1)
    chosen = np.sort(rng.choice(count, size=size, replace=False))
    audio = np.clip(record.stems[chosen].astype(np.int32).sum(axis=0), -32768, 32767)
    keep = np.isin(record.note_stems, chosen)
    return dataclasses.replace(
        record, audio=audio.astype(np.int16), notes=record.notes.select(keep), stems=None,
        note_stems=None,
    )  # fmt: skip


def crop_example(record: Record, piece, model: ModelConfig, data: DataConfig, rng) -> dict:
    """One training example from a piece (record index, first frame, frames) of a record: a
    crop of ``model.segment_frames`` frames and its targets, padded to the target length."""
    if data.submix and record.stems is not None and record.stems.shape[0] > 1:
        record = submix(record, rng, data.min_submix_stems)
    _, first, frames = (int(v) for v in piece)
    length = model.segment_frames
    offset = int(np.clip(rng.integers(-(length - 1), frames), 0, frames - 1))
    start = first + offset
    end = first + min(offset + length, frames)
    total = num_frames(record.audio.shape[-1])
    audio = np.zeros(length * HOP_SAMPLES, np.float32)
    clip = record.audio[start * HOP_SAMPLES : end * HOP_SAMPLES].astype(np.float32) / 32768.0
    audio[: clip.size] = clip
    tokens = TokenEncoder(record.notes, model.vocab, total).tokens(start, end)
    target_length = data.target_length_for(model)
    targets = np.zeros(target_length, np.int32)
    if len(tokens) > target_length:  # MT3 asserts here; keep the first ids and end
        tokens = tokens[: target_length - 1] + [EOS_ID]
    targets[: len(tokens)] = tokens
    return {"audio": audio, "num_valid_frames": np.int32(end - start), "targets": targets}


class PieceStream:
    """An endless, deterministic sequence of pieces drawn from several sources.

    Element i is (source index, record index, first frame, frames). Draws come in blocks of
    ``BLOCK``: a block's sources are sampled with the mixture weights from a generator seeded by
    (seed, block), and each source walks through its pieces in a fresh permutation every epoch,
    seeded by (seed, source, epoch). Random access costs O(1) after the blocks before it have
    been counted once, so a restored iterator jumps straight back to its position.
    """

    BLOCK = 4096

    def __init__(self, pieces: list[np.ndarray], weights, seed: int):
        self.pieces = [np.asarray(p) for p in pieces]
        self.weights = np.asarray(weights, np.float64)
        self.seed = seed
        self._starts = [np.zeros(len(pieces), np.int64)]  # draws per source before block b
        self._cache: dict = {}

    def __len__(self) -> int:
        return np.iinfo(np.int64).max

    def _choices(self, block: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 0, block])
        return rng.choice(len(self.pieces), size=self.BLOCK, p=self.weights)

    def _block(self, block: int):
        if block not in self._cache:
            while len(self._starts) <= block:
                counts = np.bincount(
                    self._choices(len(self._starts) - 1), minlength=len(self.pieces)
                )
                self._starts.append(self._starts[-1] + counts)
            choices = self._choices(block)
            ranks = np.zeros(self.BLOCK, np.int64)
            for source in range(len(self.pieces)):
                where = choices == source
                ranks[where] = self._starts[block][source] + np.arange(where.sum())
            if len(self._cache) > 8:
                self._cache.pop(next(iter(self._cache)))
            self._cache[block] = (choices, ranks)
        return self._cache[block]

    def _permutation(self, source: int, epoch: int) -> np.ndarray:
        key = ("perm", source, epoch)
        if key not in self._cache:
            rng = np.random.default_rng([self.seed, 1, source, epoch])
            self._cache[key] = rng.permutation(len(self.pieces[source]))
        return self._cache[key]

    def __getitem__(self, index: int) -> np.ndarray:
        block, offset = divmod(int(index), self.BLOCK)
        choices, ranks = self._block(block)
        source, rank = int(choices[offset]), int(ranks[offset])
        epoch, position = divmod(rank, len(self.pieces[source]))
        piece = self.pieces[source][self._permutation(source, epoch)[position]]
        return np.concatenate([[source], piece])


def piece_stream(sources, temperature: float, seed: int):
    """Endless (source index, record index, first frame, frames) rows of the given sources,
    mixed by ``mixture_weights``, as a grain MapDataset."""
    import grain

    pieces = [source.pieces() for source in sources]
    weights = mixture_weights([len(p) for p in pieces], temperature)
    return grain.MapDataset.source(PieceStream(pieces, weights, seed))


class ProcessRows:
    """The examples one process reads: its rows of every global batch.

    Global batch k is elements [k * B, (k + 1) * B) of ``examples`` (B = ``local_batch`` times
    the number of processes), exactly as one process would read it; process p reads its rows
    [p * local_batch, (p + 1) * local_batch), the rows its devices hold in the data-parallel
    mesh. Only those examples are ever loaded, and every process's iterator stands at the same
    position, so any process's saved state resumes them all.
    """

    def __init__(self, examples, local_batch: int, shard=(0, 1)):
        self.examples, self.local_batch = examples, local_batch
        self.process, self.processes = shard

    def __len__(self) -> int:
        return len(self.examples) // self.processes

    def __getitem__(self, index: int):
        batch, row = divmod(int(index), self.local_batch)
        return self.examples[(batch * self.processes + self.process) * self.local_batch + row]


def training_dataset(sources, model: ModelConfig, data: DataConfig, *, seed: int = 0):
    """Endless training examples (unbatched MapDataset): a crop of the drawn piece, its
    targets, and ``source_id`` (which source it came from, for per-dataset losses)."""

    def make(row, rng):
        source = sources[int(row[0])]
        example = crop_example(source[int(row[1])], row[1:], model, data, rng)
        example["source_id"] = np.int32(row[0])
        return example

    stream = piece_stream(sources, data.temperature, seed)
    return stream.random_map(make, seed=seed)


def mixture_weights(counts, temperature: float = MIXTURE_TEMPERATURE) -> np.ndarray:
    """MT3's temperature-scaled rates: n_i^(1/T), normalised."""
    rates = np.asarray(counts, np.float64) ** (1.0 / temperature)
    return rates / rates.sum()


def training_mixture(sources, model: ModelConfig, data: DataConfig, *, batch_size: int,
                     seed: int = 0, shard=(0, 1)):  # fmt: skip
    """Batched training input over one or more prepared splits: an IterDataset whose iterator
    state can be saved and restored (``get_state`` / ``set_state``). ``batch_size`` is this
    process's share; with ``shard=(process, processes)`` the processes together read the global
    batches of one process reading ``processes * batch_size`` (:class:`ProcessRows`)."""
    import grain

    examples = training_dataset(list(sources), model, data, seed=seed)
    rows = grain.MapDataset.source(ProcessRows(examples, batch_size, shard))
    return rows.to_iter_dataset().batch(batch_size, drop_remainder=True)


def evaluation_segments(record: Record, segment_frames: int):
    """Consecutive segments of a whole recording, as transcription cuts them: (float32
    [S, segment_frames * 128] samples, int32 [S] valid frames)."""
    from mt3.audio import split_segments

    return split_segments(record.float_audio(), segment_frames)


def with_workers(dataset, workers: int):
    """Read ``dataset`` (an IterDataset) in ``workers`` background processes (0: in-process)."""
    if workers <= 0:
        return dataset
    import grain
    from absl import flags

    if not flags.FLAGS.is_parsed():  # grain's workers read absl flags (docs/architecture.md)
        flags.FLAGS(["mt3"], known_only=True)
    return dataset.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))


def mixture_sources(name: str, data_root: str | Path, split: str = "train") -> list[SplitSource]:
    """The sources of a named mixture under ``data_root`` (one prepared folder per dataset,
    named as the dataset)."""
    if name not in mixtures():
        raise PipelineError(f"unknown mixture {name!r}; choose one of {', '.join(mixtures())}")
    root = Path(data_root)
    missing = [d for d in mixtures()[name] if not (root / d / MANIFEST_FILE).is_file()]
    if missing:
        raise PipelineError(
            f"{root}: mixture {name!r} needs prepared {', '.join(missing)} "
            f"(mt3 prepare DATASET --out {root}/DATASET)"
        )
    return [SplitSource(root / dataset, split) for dataset in mixtures()[name]]


def mixture_folders(data: DataConfig) -> list[Path]:
    """The prepared folders that ``data.mixture`` names: a named mixture's datasets, or the
    listed subfolders of ``data.data_root``."""
    names = mixtures().get(data.mixture) or [
        n.strip() for n in data.mixture.split(",") if n.strip()
    ]
    return [Path(data.data_root) / name for name in names]


def training_sources(data: DataConfig, split: str = "train") -> list[SplitSource]:
    """The sources that ``data.mixture`` names, checked before any work starts."""
    if data.mixture in mixtures():
        return mixture_sources(data.mixture, data.data_root, split)
    return [SplitSource(folder, split) for folder in mixture_folders(data)]

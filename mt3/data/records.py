"""The record format: one msgpack record per recording in ArrayRecord shards (docs/architecture.md,
datasets).

A record holds the recording's id, its 16 kHz mono audio as int16, its notes (sustain applied) as
arrays, and metadata (dataset, split, title, instruments). Shards are written to a temporary name
and renamed when complete, so a shard file that exists is whole; `prepare` resumes by skipping
them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import msgpack
import numpy as np

from mt3.audio import SAMPLE_RATE
from mt3.errors import Mt3Error
from mt3.notes import Notes

SHARD_SUFFIX = ".array_record"
MANIFEST_FILE = "manifest.json"  # a prepared dataset's index: splits, shards, records
_NOTE_FIELDS = ("start", "end", "pitch", "velocity", "program", "is_drum")


class RecordError(Mt3Error, ValueError):
    """A record shard that cannot be read."""


@dataclasses.dataclass(frozen=True)
class Record:
    """One recording: int16 [N] audio at 16 kHz, its notes, and metadata.

    Multi-track sources (Slakh2100) also keep their stems, int16 [S, N] (their sum is the mix),
    and ``note_stems`` int16 [notes], the stem each note belongs to, so that sub-mixes of some
    stems can be drawn with their own notes.
    """

    id: str
    audio: np.ndarray
    notes: Notes
    metadata: dict = dataclasses.field(default_factory=dict)
    stems: np.ndarray | None = None
    note_stems: np.ndarray | None = None

    @property
    def seconds(self) -> float:
        return self.audio.shape[-1] / SAMPLE_RATE

    def float_audio(self) -> np.ndarray:
        """float32 [N] samples in [-1, 1)."""
        return self.audio.astype(np.float32) / 32768.0


def audio_to_int16(samples: np.ndarray) -> np.ndarray:
    """float audio -> int16, clipped (round to nearest)."""
    return np.clip(np.round(np.asarray(samples) * 32768.0), -32768, 32767).astype(np.int16)


def _array(a: np.ndarray) -> dict:
    a = np.ascontiguousarray(a)
    return {"dtype": a.dtype.str, "shape": list(a.shape), "data": a.tobytes()}


def _unarray(d: dict) -> np.ndarray:
    return np.frombuffer(d["data"], dtype=np.dtype(d["dtype"])).reshape(d["shape"])


def encode_record(record: Record) -> bytes:
    return msgpack.packb(
        {
            "id": record.id,
            "audio": _array(record.audio),
            "sample_rate": SAMPLE_RATE,
            "notes": {f: _array(getattr(record.notes, f)) for f in _NOTE_FIELDS},
            "metadata": record.metadata,
            "stems": None if record.stems is None else _array(record.stems),
            "note_stems": None if record.note_stems is None else _array(record.note_stems),
        },
        use_bin_type=True,
    )


def decode_record(data: bytes) -> Record:
    payload = msgpack.unpackb(data, raw=False)
    notes = Notes(**{f: _unarray(payload["notes"][f]) for f in _NOTE_FIELDS})
    optional = {key: _unarray(payload[key]) for key in ("stems", "note_stems") if payload.get(key)}
    return Record(payload["id"], _unarray(payload["audio"]), notes, payload["metadata"], **optional)


def write_shard(path: str | os.PathLike, records) -> int:
    """Write records to an ArrayRecord shard atomically; returns how many were written."""
    from array_record.python.array_record_module import ArrayRecordWriter

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    count = 0
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = ArrayRecordWriter(str(tmp), "group_size:1")
        for record in records:
            writer.write(encode_record(record))
            count += 1
        writer.close()  # raises RuntimeError when the data cannot be written
        os.replace(tmp, path)
    except (OSError, RuntimeError, ValueError) as error:
        if isinstance(error, Mt3Error):
            raise
        reason = "no space left on device" if "No space left" in str(error) else error
        raise RecordError(f"{path}: cannot write the shard ({reason})") from None
    finally:
        tmp.unlink(missing_ok=True)
    return count


def read_shard(path: str | os.PathLike) -> Iterator[Record]:
    """Every record of one shard, in order."""
    from array_record.python.array_record_module import ArrayRecordReader

    try:
        reader = ArrayRecordReader(str(path))
    except Exception as error:
        raise RecordError(f"{path}: not a readable record shard ({error})") from None
    try:
        for index in range(reader.num_records()):
            yield decode_record(reader.read([index])[0])
    finally:
        reader.close()


def shard_paths(directory: str | os.PathLike) -> list[Path]:
    """The complete shards of a split folder, in order."""
    return sorted(Path(directory).glob(f"*{SHARD_SUFFIX}"))

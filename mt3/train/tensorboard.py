"""TensorBoard event files without TensorFlow: scalar summaries written as TFRecord-framed
`Event` protocol buffers (encoded here by hand; three message types, a few fields), which
TensorBoard reads from the run's workdir."""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as TFRecord framing uses."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, wire: int, payload: bytes) -> bytes:
    return _varint(number << 3 | wire) + payload


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _field(number, 2, _varint(len(payload)) + payload)


def encode_event(step: int, wall_time: float, scalars: dict | None = None, version=None) -> bytes:
    """An Event: wall_time (1, double), step (2, int64), file_version (3) or summary (5) with
    Value{tag (1), simple_value (2, float)} entries."""
    event = _field(1, 1, struct.pack("<d", wall_time)) + _field(2, 0, _varint(step))
    if version is not None:
        event += _length_delimited(3, version.encode())
    if scalars:
        values = b"".join(
            _length_delimited(
                1, _length_delimited(1, tag.encode()) + _field(2, 5, struct.pack("<f", v))
            )
            for tag, v in scalars.items()
        )
        event += _length_delimited(5, values)
    return event


def frame(record: bytes) -> bytes:
    """TFRecord framing: length, masked CRC of the length, data, masked CRC of the data."""
    length = struct.pack("<Q", len(record))
    return (
        length + struct.pack("<I", _masked(crc32c(length)))
        + record + struct.pack("<I", _masked(crc32c(record)))
    )  # fmt: skip


class EventWriter:
    """Appends scalar summaries to ``logdir/events.out.tfevents.<time>.<host>``."""

    def __init__(self, logdir: str | Path):
        logdir = Path(logdir)
        logdir.mkdir(parents=True, exist_ok=True)
        now = time.time()
        self.path = logdir / f"events.out.tfevents.{int(now)}.{socket.gethostname()}"
        with open(self.path, "ab") as f:
            f.write(frame(encode_event(0, now, version="brain.Event:2")))

    def scalars(self, step: int, values: dict) -> None:
        with open(self.path, "ab") as f:
            f.write(
                frame(encode_event(step, time.time(), {k: float(v) for k, v in values.items()}))
            )

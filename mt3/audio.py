"""Audio loading and MT3's framing: 16 kHz mono float32, 128-sample frames, fixed-length segments.

Loading reads anything libsndfile decodes (wav, flac, ogg/vorbis, opus, mp3, aiff, ...),
averages the channels to mono, then resamples to 16 kHz with soxr's very-high-quality filter. MT3
resampled with librosa (``kaiser_best`` in its era; ``soxr_hq`` today), so 44.1/48 kHz sources
give spectrograms that differ from MT3's in the last digits; 16 kHz files are bit-exact
(samples = int16 / 32768).

Framing follows docs/mt3.md §1.2: the audio is zero-padded by 128 - (N mod 128) samples (always
1..128) and cut into 128-sample frames at 125 frames/s; segments are consecutive runs of
``segment_frames`` frames (256 for ``mt3``, 512 for ``ismir2021``), the last one shorter. The
log-mel of a segment is computed from that segment's samples only (mt3.spectrogram).

This module is NumPy only, so token and scoring code can use its constants without importing JAX.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mt3.errors import Mt3Error

SAMPLE_RATE = 16000
HOP_SAMPLES = 128
FFT_SIZE = 2048
NUM_MEL_BINS = 512
MEL_LOW_HZ = 20.0
MEL_HIGH_HZ = 7600.0
LOG_FLOOR = 1e-5  # values <= 0 become this before the log; small positive values are kept
FRAMES_PER_SECOND = SAMPLE_RATE / HOP_SAMPLES
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".aiff", ".aif")  # found in folders
assert FRAMES_PER_SECOND == 125.0


class AudioError(Mt3Error, ValueError):
    """Audio that is missing, empty, corrupt or in a format libsndfile cannot decode."""


def num_frames(num_samples: int) -> int:
    """Frames MT3 makes of ``num_samples`` samples: the padding always adds one partial frame."""
    return num_samples // HOP_SAMPLES + 1


def num_segments(num_samples: int, segment_frames: int) -> int:
    return -(-num_frames(num_samples) // segment_frames)


def segment_start_times(num_samples: int, segment_frames: int) -> np.ndarray:
    """float64 [segments]: first frame index / 125 of each segment (not rounded to 10 ms)."""
    first_frames = np.arange(num_segments(num_samples, segment_frames)) * segment_frames
    return first_frames / FRAMES_PER_SECOND


def pad_to_frames(samples: np.ndarray) -> np.ndarray:
    """Zero-pad [..., N] samples by 128 - N mod 128, as MT3's ``_audio_to_frames`` does."""
    pad = HOP_SAMPLES - samples.shape[-1] % HOP_SAMPLES
    widths = [(0, 0)] * (samples.ndim - 1) + [(0, pad)]
    return np.pad(samples, widths)


def split_segments(samples: np.ndarray, segment_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut mono samples into zero-padded segments.

    Returns:
      segments: float32 [S, segment_frames * 128], the last one zero-padded at the end;
      num_valid_frames: int32 [S], frames of real (framed) audio in each segment.
    """
    samples = pad_to_frames(np.asarray(samples, dtype=np.float32).reshape(-1))
    frames = samples.shape[0] // HOP_SAMPLES
    count = -(-frames // segment_frames)
    segment_samples = segment_frames * HOP_SAMPLES
    padded = np.zeros(count * segment_samples, dtype=np.float32)
    padded[: samples.shape[0]] = samples
    valid = np.full(count, segment_frames, dtype=np.int32)
    valid[-1] = frames - (count - 1) * segment_frames
    return padded.reshape(count, segment_samples), valid


# ----------------------------------------------------------------------------------------------
# Loading


@contextlib.contextmanager
def _library_messages_filtered():
    """libmpg123, inside libsndfile, prints its decoding errors straight to file descriptor 2
    ("[src/libmpg123/layer3.c:...] error: dequantization failed!"), ahead of our one-line error.
    While a file is opened or read, fd 2 goes to a temporary file; afterwards everything but
    libmpg123's lines is written back."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines = sink.read().decode(errors="replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if "libmpg123" not in line)
            if kept:
                os.write(2, kept.encode())


def _open(path: Path):
    import soundfile

    if not path.exists():
        raise AudioError(f"{path}: no such audio file")
    if path.is_dir():
        raise AudioError(f"{path}: is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: file is empty (0 bytes)")
    try:
        with _library_messages_filtered():
            opened = soundfile.SoundFile(str(path))
    except Exception as error:  # libsndfile reports corrupt and unknown formats alike
        reason = str(error).split(":")[-1].strip().rstrip(".") or type(error).__name__
        raise AudioError(
            f"{path}: cannot decode audio ({reason}); use wav, flac, ogg or mp3, "
            "or convert the file with ffmpeg"
        ) from None
    # libsndfile shortens a WAV/AIFF whose data chunk runs past the end of the file, and notes
    # it only in its log ("data : 320000 (should be 159978)"): a truncated copy.
    # A streamed WAV (ffmpeg to a pipe) announces 0 or 0xFFFFFFFF bytes: unknown, not truncated.
    cut = re.search(r"\bdata\s*:\s*(\d+)\s*\(should be (\d+)\)", opened.extra_info)
    if cut and 0 < int(cut.group(2)) < int(cut.group(1)) < 0xFFFFFF00:
        opened.close()
        raise AudioError(
            f"{path}: truncated: the header announces {int(cut.group(1))} bytes of audio, the "
            f"file holds {int(cut.group(2))}; copy the file again"
        )
    return opened


def find_audio(folder: str | os.PathLike) -> list[Path]:
    """The audio files (``AUDIO_SUFFIXES``) anywhere below ``folder``, sorted."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)


def audio_info(path: str | os.PathLike) -> tuple[int, float]:
    """(native sample rate, duration in seconds) without decoding the samples; a file with no
    samples is an AudioError (found before any work)."""
    path = Path(path)
    with _open(path) as f:
        if f.frames == 0:
            raise AudioError(f"{path}: contains no audio samples")
        return f.samplerate, f.frames / f.samplerate


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode a whole file to mono float32 at ``sample_rate`` (channel mean, then soxr VHQ).

    Raises AudioError naming the file when it is missing, empty, corrupt or unsupported.
    """
    chunks = list(stream_audio(path, sample_rate=sample_rate))
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    if samples.size == 0:
        raise AudioError(f"{Path(path)}: contains no audio samples")
    return samples


def stream_audio(
    path: str | os.PathLike,
    *,
    sample_rate: int = SAMPLE_RATE,
    block_seconds: float = 60.0,
) -> Iterator[np.ndarray]:
    """Decode a file block by block: mono float32 chunks at ``sample_rate``.

    Memory stays bounded by one block however long the file is. Resampling runs as one continuous
    soxr stream, so the concatenated chunks equal a whole-file resample.
    """
    import soxr

    path = Path(path)
    with _open(path) as f:
        native_rate = f.samplerate
        if f.frames == 0:
            raise AudioError(f"{path}: contains no audio samples")
        resampler = None
        if native_rate != sample_rate:
            resampler = soxr.ResampleStream(
                native_rate, sample_rate, 1, dtype="float32", quality="VHQ"
            )
        block = max(1, int(block_seconds * native_rate))
        frames_read = 0
        while True:
            try:
                with _library_messages_filtered():
                    data = f.read(block, dtype="float32", always_2d=True)
            except Exception as error:
                raise AudioError(f"{path}: audio data is corrupt ({error})") from None
            last = data.shape[0] < block
            frames_read += data.shape[0]
            if last and frames_read < f.frames:
                raise AudioError(
                    f"{path}: truncated: {f.frames / native_rate:.2f} s announced, "
                    f"{frames_read / native_rate:.2f} s readable; copy the file again"
                )
            mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
            if not np.all(np.isfinite(mono)):
                raise AudioError(f"{path}: audio contains NaN or infinite samples")
            if resampler is not None:
                mono = resampler.resample_chunk(mono, last=last)
            if mono.size:
                yield np.ascontiguousarray(mono, dtype=np.float32)
            if last:
                break


def iter_segments(chunks, segment_frames: int) -> Iterator[tuple[int, np.ndarray, int]]:
    """Consecutive MT3 segments from a stream of mono chunks, holding one segment at a time.

    Yields (first frame index, float32 [segment_frames * 128] samples zero-padded at the end,
    number of valid frames), exactly as ``split_segments`` cuts the concatenated audio: the final
    segment carries MT3's 1-128 samples of framing padding, so audio whose length is a multiple of
    the segment length ends with a segment of one (silent) frame.
    """
    size = segment_frames * HOP_SAMPLES
    buffer = np.zeros(size, np.float32)
    filled = 0
    first_frame = 0
    for chunk in chunks:
        chunk = np.asarray(chunk, np.float32).reshape(-1)
        while chunk.size:
            take = min(size - filled, chunk.size)
            buffer[filled : filled + take] = chunk[:take]
            filled += take
            chunk = chunk[take:]
            if filled == size:
                yield first_frame, buffer.copy(), segment_frames
                first_frame += segment_frames
                filled = 0
    buffer[filled:] = 0.0
    yield first_frame, buffer, filled // HOP_SAMPLES + 1

"""MT3's log-mel front end in JAX: jit-able, batched over segments (docs/mt3.md §1.1, A.1).

Per segment of ``L`` frames (``L * 128`` samples, zero-padded past the audio's end):

1. STFT frame ``i`` is samples ``[128 i, 128 i + 2048)`` of the segment's own samples,
   zero-padded at the end (TF's ``stft(pad_end=True)``: no centering, and the next segment's
   audio is not seen);
2. periodic Hann window, 2048-point real FFT, magnitude (not power): 1025 bins;
3. 512 triangular HTK-mel bands from 20 to 7600 Hz with peak 1 and no area normalisation, the DC bin
   ignored (TF's ``linear_to_mel_weight_matrix``);
4. natural log, with values <= 0 replaced by 1e-5 (small positive values are kept);
5. frames past the segment's real audio are set to 0 *after* the log, as seqio pads.

The mel projection uses the filterbank's sparsity: bands are processed in groups whose FFT bins are
contiguous, so the matrix products skip the ~90 % of weights that are zero. Results equal the dense
product up to float32 summation order.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from mt3.audio import (
    FFT_SIZE,
    FRAMES_PER_SECOND,
    HOP_SAMPLES,
    LOG_FLOOR,
    MEL_HIGH_HZ,
    MEL_LOW_HZ,
    NUM_MEL_BINS,
    SAMPLE_RATE,
    segment_start_times,
    split_segments,
)

NUM_FFT_BINS = FFT_SIZE // 2 + 1
FRAMES_PER_FFT = FFT_SIZE // HOP_SAMPLES  # 16 hops make one analysis window
BANDS_PER_GROUP = 32


def hertz_to_mel(frequency):
    """HTK mel scale: 1127 ln(1 + f / 700)."""
    return 1127.0 * np.log1p(np.asarray(frequency, dtype=np.float64) / 700.0)


def mel_weight_matrix(
    num_mel_bins: int = NUM_MEL_BINS,
    num_fft_bins: int = NUM_FFT_BINS,
    sample_rate: int = SAMPLE_RATE,
    low_hz: float = MEL_LOW_HZ,
    high_hz: float = MEL_HIGH_HZ,
) -> np.ndarray:
    """float64 [num_fft_bins, num_mel_bins]: the triangular filters of TF's
    ``linear_to_mel_weight_matrix`` (band edges equally spaced in mel, DC row zero)."""
    fft_mel = hertz_to_mel(np.linspace(0.0, sample_rate / 2.0, num_fft_bins)[1:])[:, None]
    edges = np.linspace(hertz_to_mel(low_hz), hertz_to_mel(high_hz), num_mel_bins + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (fft_mel - lower) / (center - lower)
    falling = (upper - fft_mel) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return np.concatenate([np.zeros((1, num_mel_bins)), weights], axis=0)


def periodic_hann(length: int = FFT_SIZE) -> np.ndarray:
    """float32 [length]: 0.5 - 0.5 cos(2 pi n / length), evaluated in float32 the way TF's
    ``hann_window(periodic=True)`` does ((float32(2 pi) * n) / length, then the cosine).

    Matching TF's window bits matters in near-silent frames: a frame holding a constant 1-LSB
    offset has mathematically empty bins whose float32 round-off (about 1e-11 after the mel
    projection) TF keeps, and a float64-rounded window would give exact zeros (log 1e-5) there
    instead. MT3's networks see those values (docs/goldens.md, model §3).
    """
    count = np.arange(length, dtype=np.float32)
    angle = (np.float32(2.0 * np.pi) * count) / np.float32(length)
    return (np.float32(0.5) - np.float32(0.5) * np.cos(angle)).astype(np.float32)


@functools.cache
def _mel_groups() -> tuple[tuple[int, int, np.ndarray], ...]:
    """Groups of consecutive mel bands with the contiguous FFT-bin range they read:
    (first bin, last bin + 1, float32 weights [bins, bands])."""
    weights = mel_weight_matrix()
    groups = []
    for first_band in range(0, NUM_MEL_BINS, BANDS_PER_GROUP):
        block = weights[:, first_band : first_band + BANDS_PER_GROUP]
        rows = np.flatnonzero(block.any(axis=1))
        low, high = (int(rows[0]), int(rows[-1]) + 1) if rows.size else (1, 2)
        groups.append((low, high, block[low:high].astype(np.float32)))
    return tuple(groups)


def _windowed_frames(segment: jax.Array, num_frames: int) -> jax.Array:
    """[L*128] samples -> [L, 2048] Hann-windowed analysis frames (hop 128, zero-padded end).

    Frame i is hops i..i+15 stacked; stacking along a new axis and multiplying by the window
    fuses into one pass over the 16x-expanded frames.
    """
    padded = jnp.pad(segment, (0, FFT_SIZE - HOP_SAMPLES))
    hops = padded.reshape(num_frames + FRAMES_PER_FFT - 1, HOP_SAMPLES)
    stacked = jnp.stack([hops[k : k + num_frames] for k in range(FRAMES_PER_FFT)], axis=1)
    window = jnp.asarray(periodic_hann()).reshape(FRAMES_PER_FFT, HOP_SAMPLES)
    return (stacked * window).reshape(num_frames, FFT_SIZE)


def _segment_log_mel(segment: jax.Array) -> jax.Array:
    """[L*128] samples of one segment -> [L, 512] log-mel (every row)."""
    num_frames = segment.shape[-1] // HOP_SAMPLES
    spectrum = jnp.fft.rfft(_windowed_frames(segment, num_frames), n=FFT_SIZE, axis=-1)
    magnitude = jnp.sqrt(spectrum.real**2 + spectrum.imag**2)
    mel = jnp.concatenate(
        [
            jnp.matmul(magnitude[:, low:high], weights, precision=jax.lax.Precision.HIGHEST)
            for low, high, weights in _mel_groups()
        ],
        axis=-1,
    )
    return jnp.log(jnp.where(mel > 0, mel, LOG_FLOOR))


def log_mel(segments: jax.Array, num_valid_frames: jax.Array | None = None) -> jax.Array:
    """MT3's encoder input for a batch of segments.

    Segments are processed one after another (``lax.map``): a segment's 2 MB of analysis frames
    stays in cache, which makes a batch faster than vectorising over it.

    Args:
      segments: float32 [..., L * 128] samples of each segment (zero past the audio's end).
      num_valid_frames: int [...] frames of real audio per segment; rows at or past it become 0.
        None keeps every row (a full segment).

    Returns:
      float32 [..., L, 512] log-mel features.
    """
    segments = jnp.asarray(segments, jnp.float32)
    batch_shape, num_samples = segments.shape[:-1], segments.shape[-1]
    num_frames = num_samples // HOP_SAMPLES
    flat = segments.reshape(-1, num_samples)
    features = jax.lax.map(_segment_log_mel, flat).reshape(*batch_shape, num_frames, NUM_MEL_BINS)
    if num_valid_frames is not None:
        rows = jnp.arange(num_frames)
        valid = rows < jnp.asarray(num_valid_frames)[..., None]
        features = jnp.where(valid[..., None], features, 0.0)
    return features


log_mel_jit = jax.jit(log_mel)


def audio_to_features(
    samples: np.ndarray, segment_frames: int, *, batch_size: int = 64, progress: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Encoder inputs for a whole recording, computed in fixed-size batches.

    Args:
      samples: float32 [N] 16 kHz mono audio.
      segment_frames: frames per segment (the variant's: 256 for mt3, 512 for ismir2021).
      batch_size: segments per jitted call (the last batch is zero-padded, so one compilation
        serves the whole file).
      progress: show a progress bar in seconds of audio (stderr).

    Returns:
      inputs: float32 [S, L, 512]; start_times: float64 [S] (first frame / 125);
      num_valid_frames: int32 [S].
    """
    segments, valid = split_segments(samples, segment_frames)
    count = segments.shape[0]
    batch = min(batch_size, count)
    outputs = []
    bar = tqdm(
        total=round(samples.size / SAMPLE_RATE, 1),
        unit="s audio",
        disable=not progress or count <= batch,
        bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s audio [{elapsed}<{remaining}]",
    )
    seconds_per_segment = segment_frames / FRAMES_PER_SECOND
    for begin in range(0, count, batch):
        chunk = segments[begin : begin + batch]
        chunk_valid = valid[begin : begin + batch]
        real = chunk.shape[0]
        if real < batch:
            chunk = np.concatenate([chunk, np.zeros((batch - real, chunk.shape[1]), np.float32)])
            chunk_valid = np.concatenate([chunk_valid, np.zeros(batch - real, np.int32)])
        outputs.append(np.asarray(log_mel_jit(chunk, chunk_valid))[:real])
        bar.update(min(real * seconds_per_segment, bar.total - bar.n))
    bar.close()
    start_times = segment_start_times(samples.size, segment_frames)
    return np.concatenate(outputs), start_times, valid

"""Audio loading and framing, and the JAX log-mel against an independent float64 computation and
MT3's TensorFlow front end (../shared/golden/features)."""

from __future__ import annotations

import json
import os

import jax
import numpy as np
import pytest
import soundfile

from mt3.audio import (
    AudioError,
    load_audio,
    num_frames,
    split_segments,
    stream_audio,
)
from mt3.spectrogram import audio_to_features, log_mel, log_mel_jit

LOG_FLOOR = np.log(np.float32(1e-5))


def tone(seconds=1.0, rate=16000, frequency=440.0, channels=1):
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.5 * np.sin(2 * np.pi * frequency * t).astype(np.float32)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


@pytest.mark.parametrize(
    "suffix, subtype", [(".wav", "PCM_16"), (".flac", "PCM_16"), (".ogg", "VORBIS"), (".mp3", None)]
)
def test_load_formats_resample_to_16k_mono(tmp_path, suffix, subtype):
    path = tmp_path / f"tone{suffix}"
    soundfile.write(path, tone(1.0, 44100, 1000.0, channels=2), 44100, subtype=subtype)
    samples = load_audio(path)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(samples.size - 16000) < 0.02 * 16000  # mp3/ogg encoders add a little padding
    spectrum = np.abs(np.fft.rfft(samples[2000:14000]))
    assert abs(np.argmax(spectrum) * 16000 / 12000 - 1000.0) < 2.0


def test_16k_pcm_is_bit_exact_and_stereo_is_averaged(tmp_path):
    left = (np.arange(1600) % 200 - 100).astype(np.int16)
    right = -left
    path = tmp_path / "stereo.wav"
    soundfile.write(path, np.stack([left, left], 1), 16000, subtype="PCM_16")
    np.testing.assert_array_equal(load_audio(path), left.astype(np.float32) / 32768)
    soundfile.write(path, np.stack([left, right], 1), 16000, subtype="PCM_16")
    np.testing.assert_array_equal(load_audio(path), np.zeros(1600, np.float32))


def test_streaming_equals_whole_file(tmp_path):
    path = tmp_path / "long.wav"
    soundfile.write(path, tone(7.3, 22050, 330.0), 22050)
    whole = load_audio(path)
    chunks = list(stream_audio(path, block_seconds=1.0))
    assert len(chunks) > 5
    np.testing.assert_allclose(np.concatenate(chunks), whole, atol=1e-6)


def test_audio_errors(tmp_path):
    with pytest.raises(AudioError, match="absent.wav: no such audio file"):
        load_audio(tmp_path / "absent.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match="empty.wav: file is empty"):
        load_audio(tmp_path / "empty.wav")
    (tmp_path / "corrupt.flac").write_bytes(b"fLaC" + bytes(range(200)))
    with pytest.raises(AudioError, match="corrupt.flac: cannot decode audio"):
        load_audio(tmp_path / "corrupt.flac")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(AudioError, match="notes.txt: cannot decode audio"):
        load_audio(tmp_path / "notes.txt")
    soundfile.write(tmp_path / "silent.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match="silent.wav: contains no audio samples"):
        load_audio(tmp_path / "silent.wav")
    with pytest.raises(AudioError, match="is a folder"):
        load_audio(tmp_path)


def test_framing_always_adds_padding():
    assert num_frames(0) == 1
    assert num_frames(127) == 1
    assert num_frames(128) == 2  # a whole extra frame for an exact multiple
    segments, valid = split_segments(np.ones(65536, np.float32), 256)
    assert segments.shape == (3, 32768)
    assert valid.tolist() == [256, 256, 1]
    assert segments[2, :128].sum() == 0  # the padded frame holds zeros


# ----------------------------------------------------------------------------------------------
# Log-mel against an independent float64 NumPy computation of the same definition


def reference_log_mel(segment: np.ndarray, valid_frames: int) -> np.ndarray:
    """Spec §1.1 written out directly: explicit loops, float64, dense filters, band by band."""
    frames = segment.size // 128
    padded = np.concatenate([segment.astype(np.float64), np.zeros(2048)])
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(2048) / 2048)
    spectra = np.stack(
        [np.abs(np.fft.rfft(padded[128 * i : 128 * i + 2048] * window)) for i in range(frames)]
    )
    mel_of = lambda hz: 1127.0 * np.log(1.0 + hz / 700.0)
    edges = np.linspace(mel_of(20.0), mel_of(7600.0), 514)
    bin_mel = mel_of(np.arange(1025) * 8000.0 / 1024)
    filters = np.zeros((1025, 512))
    for band in range(512):
        low, center, high = edges[band : band + 3]
        for k in range(1, 1025):  # the DC bin stays 0
            m = bin_mel[k]
            filters[k, band] = max(
                0.0, min((m - low) / (center - low), (high - m) / (high - center))
            )
    mel = spectra @ filters
    out = np.log(np.where(mel > 0, mel, 1e-5))
    out[valid_frames:] = 0.0
    return out


def test_log_mel_matches_float64_reference():
    rng = np.random.default_rng(0)
    t = np.arange(256 * 128) / 16000
    audio = 0.3 * np.sin(2 * np.pi * 261.6 * t) + 0.05 * rng.standard_normal(t.size)
    audio[20000:] *= 0.001  # a quiet passage
    segment = audio.astype(np.float32)
    ours = np.asarray(log_mel(segment, 200))
    reference = reference_log_mel(segment, 200)
    live = (reference > LOG_FLOOR + 1e-3) | (ours > LOG_FLOOR + 1e-3)
    assert np.abs(ours - reference)[live].max() < 2e-3
    assert np.all(ours[200:] == 0)


def test_log_mel_is_batched_and_jitted():
    rng = np.random.default_rng(1)
    batch = rng.uniform(-0.5, 0.5, (3, 256 * 128)).astype(np.float32)
    valid = np.array([256, 100, 1])
    together = np.asarray(log_mel_jit(batch, valid))
    assert together.shape == (3, 256, 512)
    for i in range(3):
        alone = np.asarray(log_mel_jit(batch[i], valid[i]))
        np.testing.assert_allclose(together[i], alone, atol=1e-5)
    # Works under vmap and inside a larger jitted function too.
    np.testing.assert_allclose(
        np.asarray(jax.jit(jax.vmap(log_mel))(batch, valid)), together, atol=1e-5
    )


# ----------------------------------------------------------------------------------------------
# MT3's TensorFlow front end


@pytest.mark.parametrize("index", range(10))
def test_features_match_mt3(golden_dir, index, run_cli, tmp_path):
    folder = golden_dir("features")
    case = json.loads((folder / "cases.json").read_text())[index]
    out = tmp_path / "features.npz"
    status, _, err = run_cli(
        "features", folder / case["audio"], "--config", case["config"], "--out", out
    )
    assert status == 0, err
    ours, golden = np.load(out), np.load(folder / case["golden"])
    assert ours["inputs"].shape == golden["inputs"].shape
    np.testing.assert_allclose(ours["start_times"], golden["start_times"], atol=1e-9, rtol=0)
    np.testing.assert_array_equal(ours["num_valid_frames"], golden["num_valid_frames"])
    a, b = ours["inputs"], golden["inputs"]
    live = (b > LOG_FLOOR + 1e-3) | (a > LOG_FLOOR + 1e-3)
    assert np.abs(a - b)[live].max(initial=0.0) < case["tol"]
    for segment, valid in enumerate(ours["num_valid_frames"]):
        assert np.all(a[segment, valid:] == 0)


def test_features_independent_of_batch_size():
    samples = np.random.default_rng(2).uniform(-0.3, 0.3, 16000 * 9).astype(np.float32)
    a, _, _ = audio_to_features(samples, 256, batch_size=1)
    b, _, _ = audio_to_features(samples, 256, batch_size=3)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_decoder_library_messages_stay_out_of_the_error(tmp_path, capfd):
    """libmpg123 (inside libsndfile) prints "dequantization failed" straight to file descriptor 2
    while decoding a damaged mp3; the user should see our one error, not the library's log."""
    import soundfile

    from mt3.audio import AudioError, load_audio

    t = np.arange(16000 * 3) / 16000
    soundfile.write(tmp_path / "ok.mp3", 0.3 * np.sin(2 * np.pi * 440 * t), 16000, format="MP3")
    data = bytearray((tmp_path / "ok.mp3").read_bytes())
    for i in range(200, len(data), 97):
        data[i] = (data[i] * 7 + 13) % 256
    (tmp_path / "bad.mp3").write_bytes(bytes(data))
    capfd.readouterr()
    with pytest.raises(AudioError, match="bad.mp3: truncated"):
        load_audio(tmp_path / "bad.mp3")
    assert "libmpg123" not in capfd.readouterr().err
    os.write(2, b"other messages still pass\n")
    assert "other messages still pass" in capfd.readouterr().err

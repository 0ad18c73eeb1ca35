"""Long-audio transcription: streaming segments, the end-to-end check against the original MT3
network (../shared/golden/model), outputs and errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
from flax import nnx

from mt3.audio import iter_segments, split_segments
from mt3.config import get_variant
from mt3.infer import TranscribeOptions, Transcriber, output_bases
from mt3.model.decoding import DecodeOptions
from mt3.model.store import save_model
from mt3.model.t5 import Transformer


@pytest.mark.parametrize("length", [0, 1, 127, 128, 32767, 32768, 65536, 100_000])
def test_streamed_segments_equal_whole_file_segments(length):
    audio = np.random.default_rng(length).uniform(-1, 1, length).astype(np.float32)
    expected, valid = split_segments(audio, 256)
    chunks = [audio[i : i + 5000] for i in range(0, length, 5000)]
    streamed = list(iter_segments(chunks, 256))
    assert len(streamed) == len(expected)
    for (frame, samples, frames), row, count, index in zip(
        streamed, expected, valid, range(len(expected))
    ):
        assert frame == 256 * index and frames == count
        np.testing.assert_array_equal(samples, row)


def write_clip(path, seconds, rate=22050):
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(path, 0.3 * np.sin(2 * np.pi * 330 * t), rate)


def test_file_and_array_give_the_same_tokens(tiny_checkpoint, tmp_path):
    from mt3.audio import load_audio
    from mt3.model.store import load_model

    path = tmp_path / "clip.flac"
    write_clip(path, 7.0)
    options = TranscribeOptions(batch_size=2, decode=DecodeOptions("greedy", max_length=12))
    transcriber = Transcriber(load_model(tiny_checkpoint), options)
    from_file = transcriber.transcribe(path)
    from_array = transcriber.transcribe(load_audio(path))
    assert [s for _, s in from_file.segments] == [s for _, s in from_array.segments]
    assert [t for t, _ in from_file.segments] == [0.0, 2.048, 4.096, 6.144]
    assert all(len(ids) <= 12 for _, ids in from_file.segments)
    assert from_file.duration_seconds == pytest.approx(7.0)


def test_transcribe_cli_outputs(tiny_checkpoint, tmp_path, run_cli):
    clips = [tmp_path / "a.wav", tmp_path / "b.ogg"]
    for clip in clips:
        write_clip(clip, 3.0)
    reference = tmp_path / "ref.mid"
    from mt3.notes import Notes, write_midi

    write_midi(Notes.from_records([{"start": 0, "end": 1, "pitch": 64}]), reference)
    status, out, err = run_cli(
        "transcribe", *clips, "--checkpoint", tiny_checkpoint, "-o", tmp_path / "out",
        "--format", "midi,json,png,wav", "--max-tokens", "8", "--reference", reference,
        "--dump-tokens", tmp_path / "tokens.json", "--instruments", "piano,drums",
        "--context", "ties",
    )  # fmt: skip
    assert status == 0, err
    for stem in ("a", "b"):
        for suffix in (".mid", ".json", ".png", ".wav"):
            assert (tmp_path / "out" / f"{stem}{suffix}").stat().st_size > 0
        dump = json.loads((tmp_path / f"tokens.{stem}.json").read_text())
        assert [s["start_time"] for s in dump["segments"]] == [0.0, 2.048]
    notes = json.loads((tmp_path / "out" / "a.json").read_text())
    assert set(notes) >= {"notes", "duration", "invalid_events", "dropped_events"}
    assert all(n["program"] < 8 for n in notes["notes"] if not n["is_drum"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["{clip}"], "no --checkpoint given"),
        (["{clip}", "--checkpoint", "{tmp}"], "not an mt3 checkpoint"),
        (["{tmp}/missing.wav", "--checkpoint", "{ckpt}"], "missing.wav: no such audio file"),
        (["{clip}", "--checkpoint", "{ckpt}", "--format", "mp4"], "--format takes"),
        (["{clip}", "--checkpoint", "{ckpt}", "--model-config", "ismir2021"], "holds a tiny"),
        (["{clip}", "--checkpoint", "{ckpt}", "--instruments", "kazoo"], "unknown instrument"),
        (["{clip}", "{clip}", "--checkpoint", "{ckpt}"], "several inputs are named"),
        (["{clip}", "--checkpoint", "{ckpt}", "--batch-size", "0"], "batch size"),
        (
            ["{clip}", "--checkpoint", "{ckpt}", "--decode", "beam", "--context", "ties"],
            "segment context needs the 'mt3' or 'greedy' search",
        ),
    ],
)
def test_transcribe_errors(args, message, tiny_checkpoint, tmp_path, run_cli):
    clip = tmp_path / "clip.wav"
    write_clip(clip, 1.0)
    args = [a.format(clip=clip, tmp=tmp_path, ckpt=tiny_checkpoint) for a in args]
    status, _, err = run_cli("transcribe", *args, "-o", tmp_path / "out")
    assert status == 2
    assert err.startswith("mt3 transcribe: error: ") and err.count("\n") == 1 and message in err
    assert not (tmp_path / "out").exists()


def test_output_bases(tmp_path):
    assert output_bases(["x/a.wav"], tmp_path / "song.mid") == [tmp_path / "song"]
    assert output_bases(["x/a.wav", "y/b.mp3"], tmp_path) == [tmp_path / "a", tmp_path / "b"]


def test_transcribe_matches_the_original_network(golden_dir, tmp_path, run_cli):
    """The golden check of docs/goldens.md (model goldens): convert the T5X checkpoint, transcribe
    each clip from its WAV, and require each golden greedy segment to be a prefix of what we
    emit."""
    folder = golden_dir("model")
    cases = json.loads((folder / "cases.json").read_text())
    converted = tmp_path / "converted"
    status, _, err = run_cli(
        "convert-checkpoint", folder / cases["checkpoint"], converted, *cases["convert_args"]
    )
    assert status == 0, err
    for index, clip in enumerate(cases["clips"]):  # new outputs per clip: none is replaced
        dump = tmp_path / f"tokens{index}.json"
        status, _, err = run_cli(
            "transcribe", folder / clip["audio"], "--checkpoint", converted,
            "-o", tmp_path / f"out{index}.mid", "--dump-tokens", dump, "--batch-size", "3",
            *cases["transcribe_args"],
        )  # fmt: skip
        assert status == 0, err
        ours = json.loads(dump.read_text())["segments"]
        golden = json.loads((folder / clip["greedy"]).read_text())["segments"]
        assert len(ours) == len(golden)
        for segment, expected in zip(ours, golden):
            assert segment["tokens"][: len(expected["tokens"])] == expected["tokens"]


@pytest.mark.slow
def test_one_hour_file_with_bounded_memory(tmp_path):
    """`mt3 transcribe` on a 60-minute 44.1 kHz stereo FLAC with the full-size mt3 network
    (random weights, 8 ids per segment so that the run takes minutes): peak memory < 3 GB."""
    import resource
    import subprocess
    import sys

    checkpoint = tmp_path / "mt3"
    save_model(Transformer(get_variant("mt3"), rngs=nnx.Rngs(0)), checkpoint)
    audio = tmp_path / "hour.flac"
    rng = np.random.default_rng(0)
    with soundfile.SoundFile(audio, "w", samplerate=44100, channels=2, subtype="PCM_16") as f:
        t = np.arange(44100 * 60) / 44100
        for minute in range(60):
            wave = 0.2 * np.sin(2 * np.pi * (220 + minute) * t) + 0.01 * rng.standard_normal(t.size)
            f.write(np.stack([wave, wave], axis=1).astype(np.float32))
    result = subprocess.run(
        [sys.executable, "-m", "mt3", "transcribe", str(audio), "--checkpoint", str(checkpoint),
         "--max-tokens", "8", "-o", str(tmp_path / "out")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    peak_bytes = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    assert peak_bytes < 3e9, f"peak memory {peak_bytes / 1e9:.2f} GB"
    assert "3600/3600 s audio" in result.stderr
    assert (tmp_path / "out" / "hour.mid").is_file()


COMPILE_TWICE = """
import sys, time
import numpy as np
import mt3
from mt3.infer import Transcriber, TranscribeOptions
from mt3.model.decoding import DecodeOptions
model = mt3.load_model(sys.argv[1])
options = TranscribeOptions(batch_size=2, decode=DecodeOptions("greedy", max_length=8))
began = time.perf_counter()
Transcriber(model, options).transcribe(np.zeros(16000, np.float32))
print(time.perf_counter() - began)
"""


def test_compilation_cache_in_the_user_cache(tiny_checkpoint, tmp_path):
    """The first run fills MT3_HOME/jax; MT3_COMPILATION_CACHE=off leaves it alone."""
    import os
    import subprocess
    import sys

    home = tmp_path / "home"
    run = [sys.executable, "-c", COMPILE_TWICE, str(tiny_checkpoint)]
    env = {**os.environ, "MT3_HOME": str(home), "MT3_COMPILATION_CACHE": "off"}
    subprocess.run(run, check=True, capture_output=True, env=env)
    assert not (home / "jax").exists()
    env["MT3_COMPILATION_CACHE"] = "on"
    subprocess.run(run, check=True, capture_output=True, env=env)
    assert any((home / "jax").iterdir())


def test_continuous_batching_gives_the_ids_of_whole_batches(tiny_checkpoint):
    """One stream of segments over several inputs, rows refilled as they end, gives every
    segment the ids that whole batches give it (tests/test_decoding.py checks the search
    itself on segments of many lengths)."""
    from mt3.model.store import load_model

    model = load_model(tiny_checkpoint)
    rng = np.random.default_rng(0)
    audios = [0.1 * rng.normal(size=int(s * 16000)).astype(np.float32) for s in (4.5, 1.0, 7.0)]
    ids = {}
    for continuous in (False, True):
        options = TranscribeOptions(
            batch_size=3, continuous=continuous, decode=DecodeOptions("mt3", max_length=40)
        )
        results = list(Transcriber(model, options).transcribe_many(audios))
        assert [r.duration_seconds for r in results] == [4.5, 1.0, 7.0]
        ids[continuous] = [[(t, s) for t, s in r.segments] for r in results]
    assert ids[True] == ids[False]
    assert [len(r) for r in ids[True]] == [3, 1, 4]


def test_folders_file_lists_and_shards(tmp_path):
    from mt3.infer import TranscribeError, expand_inputs, take_shard

    for name in ("a/x.wav", "a/sub/y.flac", "a/notes.txt", "b.ogg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = expand_inputs([tmp_path / "a", tmp_path / "b.ogg"])
    assert [(p.relative_to(tmp_path).as_posix(), n.as_posix()) for p, n in found] == [
        ("a/sub/y.flac", "sub/y"), ("a/x.wav", "x"), ("b.ogg", "b"),
    ]  # fmt: skip
    listing = tmp_path / "list.txt"
    listing.write_text(f"# corpus\n{tmp_path / 'b.ogg'}\n\n{tmp_path / 'a'}\n")
    assert len(expand_inputs(files=listing)) == 3
    shards = [take_shard(found, f"{i}/2") for i in range(2)]
    assert sorted(shards[0] + shards[1]) == sorted(found) and not set(shards[0]) & set(shards[1])
    for spec in ("2/2", "x", "1/0", "-1/3"):
        with pytest.raises(TranscribeError, match="--shard takes I/N"):
            take_shard(found, spec)
    with pytest.raises(TranscribeError, match="no audio files"):
        expand_inputs([_empty(tmp_path)])
    with pytest.raises(TranscribeError, match="no input"):
        expand_inputs([])


def _empty(tmp_path):
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


def test_transcribe_a_folder_keeps_its_layout(tiny_checkpoint, tmp_path, run_cli):
    for name in ("set/one.wav", "set/deeper/two.wav"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        write_clip(tmp_path / name, 1.5)
    args = ["transcribe", tmp_path / "set", "--checkpoint", tiny_checkpoint, "-o", tmp_path / "out",
            "--max-tokens", "6"]  # fmt: skip
    status, out, err = run_cli(*args, "--shard", "0/2")
    assert status == 0, err
    written = [p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*.mid")]
    assert [p.as_posix() for p in written] == ["deeper/two.mid"]
    status, out, err = run_cli(*args, "--skip-existing")
    assert status == 0, err
    assert "skipped" in out and (tmp_path / "out" / "one.mid").is_file()


@pytest.mark.slow
def test_released_weights_on_a_rendered_piano_piece(released_model, samples):
    """Magenta's released weights transcribe 20 s of a MAESTRO performance rendered with the
    General MIDI piano (onset F1 >= 0.9 against its MIDI), and continuous batching gives every
    segment the ids of MT3's whole batches."""
    from mt3.metrics import score
    from mt3.model.store import load_model
    from mt3.notes import read_midi
    from mt3.render import render_notes

    midi = next((samples("maestro") / "2018").glob("*.midi"))
    notes = read_midi(midi).notes
    notes = notes.select(notes.end < 20.0)
    audio = render_notes(notes, 16000).mean(axis=1).astype(np.float32)
    model = load_model(released_model)
    results = {}
    for continuous in (True, False):
        options = TranscribeOptions(batch_size=8, continuous=continuous)
        results[continuous] = Transcriber(model, options).transcribe(audio)
    onset_f1 = score(notes, results[True].notes)["Onset F1"]
    assert onset_f1 >= 0.9, onset_f1
    assert results[True].segments == results[False].segments


def test_segment_context_chains_each_file_and_opens_segments_with_ties(tiny_checkpoint):
    """With context='ties' every segment but the first of each chain (here MIN_CHAIN segments
    of a file) opens with the tie section of the segment before it; the ids depend on the chains
    only, not on the batch size or on the other files sharing the stream."""
    from mt3.events import tie_section_after
    from mt3.infer import MIN_CHAIN, TranscribeError
    from mt3.model.store import load_model

    model = load_model(tiny_checkpoint)
    rng = np.random.default_rng(1)
    audios = [0.1 * rng.normal(size=int(s * 16000)).astype(np.float32) for s in (12.0, 3.0, 9.5)]
    decode = DecodeOptions("mt3", max_length=48)
    runs = []
    for batch, inputs in ((4, audios), (8, audios), (8, audios[2:])):  # all chains of 4
        options = TranscribeOptions(batch_size=batch, decode=decode, context="ties")
        runs.append([r.segments for r in Transcriber(model, options).transcribe_many(inputs)])
    assert runs[0] == runs[1] and runs[1][2] == runs[2][0]
    opened = 0
    for segments in runs[0]:
        for k in range(1, len(segments)):
            section = tie_section_after(segments[k - 1][1], "mt3")
            if k % MIN_CHAIN:
                assert segments[k][1][: len(section)] == section
                opened += 1
    assert opened == 4 + 1 + 3  # segments 1-3 and 5 of 6, 1 of 2, 1-3 of 5
    with pytest.raises(TranscribeError, match="context"):
        TranscribeOptions(context="notes")
    with pytest.raises(TranscribeError, match="'mt3' or 'greedy'"):
        Transcriber(model, TranscribeOptions(decode=DecodeOptions("beam"), context="ties"))

"""Random bytes and structurally valid but extreme MIDI and audio through the commands: each ends
with exit status 0, or 2 and one line on stderr, in bounded time; never a traceback."""

from __future__ import annotations

import time

import mido
import numpy as np
import soundfile
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

# No shrinking: a failure is reported as found, in bounded time.
FUZZ = settings(max_examples=25, deadline=None, phases=[Phase.explicit, Phase.generate],
                suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip


def ends_cleanly(run_cli, *args, seconds: float = 60.0):
    began = time.perf_counter()
    status, _, err = run_cli(*args)  # an uncaught exception fails the test here
    assert status in (0, 2), err
    if status == 2:  # what a terminal shows: progress bars are cleared with carriage returns
        shown = "".join(line.split("\r")[-1] + "\n" for line in err.rstrip("\n").split("\n"))
        assert shown.count("\n") == 1 and shown.startswith(f"mt3 {args[0]}: error: "), err
    assert time.perf_counter() - began < seconds, f"{args[0]} took too long"


@FUZZ
@given(data=st.binary(max_size=400))
def test_random_bytes(data, run_cli, tmp_path):
    for name in ("x.mid", "x.wav", "x.json"):
        (tmp_path / name).write_bytes(data)
    ends_cleanly(run_cli, "tokens", tmp_path / "x.mid")
    ends_cleanly(run_cli, "score", tmp_path / "x.mid", tmp_path / "x.json")
    ends_cleanly(run_cli, "features", tmp_path / "x.wav", "--out", tmp_path / "f.npz",
                 "--overwrite")  # fmt: skip


notes = st.tuples(
    st.integers(0, 10**7),  # onset tick
    st.integers(0, 10**6),  # duration in ticks
    st.integers(0, 127),
    st.integers(0, 127),
    st.integers(0, 15),  # channel (9: drums)
)


@FUZZ
@given(
    tempo=st.integers(1, 16_777_215),
    ticks_per_beat=st.integers(1, 960),
    events=st.lists(notes, max_size=20),
    program=st.integers(0, 127),
    duration=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
)
def test_extreme_midi(tempo, ticks_per_beat, events, program, duration, run_cli, tmp_path):
    midi = mido.MidiFile(ticks_per_beat=ticks_per_beat)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=tempo, time=0))
    track.append(mido.Message("program_change", program=program, time=0))
    timeline = []
    for onset, length, pitch, velocity, channel in events:
        timeline.append((onset, "note_on", pitch, velocity, channel))
        timeline.append((onset + length, "note_off", pitch, 0, channel))
    now = 0
    for tick, kind, pitch, velocity, channel in sorted(timeline):
        track.append(mido.Message(kind, note=pitch, velocity=velocity, channel=channel,
                                  time=tick - now))  # fmt: skip
        now = tick
    path = tmp_path / "x.mid"
    midi.save(path)
    extra = [] if duration is None else [f"--duration={duration!r}"]
    ends_cleanly(run_cli, "tokens", path, "--json", *extra)
    ends_cleanly(run_cli, "score", path, path)


@settings(max_examples=4, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    rate=st.sampled_from([8000, 16000, 44100, 96000]),
    seconds=st.floats(0.0, 3.0),
    channels=st.integers(1, 6),
    kind=st.sampled_from(["noise", "silence", "clipped", "nan"]),
)
def test_extreme_audio(rate, seconds, channels, kind, run_cli, tmp_path, tiny_checkpoint):
    frames = int(rate * seconds)
    rng = np.random.default_rng(0)
    audio = {
        "noise": rng.normal(0, 0.3, (frames, channels)),
        "silence": np.zeros((frames, channels)),
        "clipped": np.sign(rng.normal(size=(frames, channels))) * 10.0,
        "nan": np.full((frames, channels), np.nan),
    }[kind].astype(np.float32)
    path = tmp_path / "x.wav"
    soundfile.write(path, audio, rate, subtype="FLOAT")
    ends_cleanly(run_cli, "features", path, "--out", tmp_path / "f.npz", "--overwrite")
    ends_cleanly(run_cli, "transcribe", path, "--checkpoint", tiny_checkpoint, "-o",
                 tmp_path / "out", "--overwrite", "--max-tokens", "8",
                 "--format", "midi,json", seconds=120)  # fmt: skip

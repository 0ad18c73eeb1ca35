"""Notes to audio with a General MIDI soundfont (tinysoundfont), to listen to a transcription.

The default soundfont is TimGM6mb.sf2, which pretty_midi ships. Each program gets its own channel
(drums on channel 10 in drum mode); with more than 15 programs, channels are re-assigned with a
program change before a note starts, which leaves sounding notes alone.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mt3.errors import Mt3Error
from mt3.notes import DRUM_CHANNEL, Notes

RELEASE_SECONDS = 1.0  # rendered after the last note-off so that the tails are not cut


class RenderError(Mt3Error, RuntimeError):
    """The soundfont renderer is missing or a soundfont cannot be loaded."""


GM_BANK = Path("/usr/share/sounds/sf2/sf_GMbank.sf2")  # Debian's csound-soundfont


def default_soundfont() -> Path:
    import pretty_midi

    return Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"


def training_soundfonts() -> list[Path]:
    """Soundfonts for synthetic training audio: TimGM6mb (shipped with pretty_midi) and, when
    installed, Debian's sf_GMbank. FluidR3_GM and MuseScore General stay out (held-out timbres)."""
    return [default_soundfont()] + ([GM_BANK] if GM_BANK.is_file() else [])


def render_notes(
    notes: Notes, sample_rate: int = 44100, soundfont: str | os.PathLike | None = None
) -> np.ndarray:
    """float32 [samples, 2] stereo audio of the notes (ends 1 s after the last note-off)."""
    try:
        import tinysoundfont
    except ImportError:
        raise RenderError(
            "rendering needs tinysoundfont: pip install --no-deps tinysoundfont==0.3.7 "
            "(scripts/setup.sh installs it)"
        ) from None
    soundfont = Path(soundfont or default_soundfont())
    synth = tinysoundfont.Synth(samplerate=sample_rate)
    try:
        font = synth.sfload(str(soundfont))
    except Exception as error:
        raise RenderError(f"{soundfont}: cannot load soundfont ({error})") from None

    melodic_channels = [c for c in range(16) if c != DRUM_CHANNEL]
    channel_program: dict[int, int] = {}
    if notes.is_drum.any():
        synth.program_select(DRUM_CHANNEL, font, 128, 0, True)
    events = []  # (sample, order, kind, channel-or-program, pitch, velocity); offs before ons
    for s, e, p, v, q, d in zip(
        notes.start, notes.end, notes.pitch, notes.velocity, notes.program, notes.is_drum
    ):
        start, end = int(round(s * sample_rate)), int(round(e * sample_rate))
        events.append((start, 1, "on", int(q), int(p), int(v), bool(d)))
        events.append((max(end, start + 1), 0, "off", int(q), int(p), 0, bool(d)))
    events.sort(key=lambda event: (event[0], event[1]))
    total = (events[-1][0] if events else 0) + int(RELEASE_SECONDS * sample_rate)
    out = np.zeros((total, 2), np.float32)
    position = 0
    sounding: dict[tuple[int, int, bool], int] = {}  # (program, pitch, drum) -> channel
    next_channel = 0
    for sample, _, kind, program, pitch, velocity, drum in events:
        if sample > position:
            block = np.frombuffer(synth.generate(sample - position), np.float32)
            out[position:sample] = block.reshape(-1, 2)
            position = sample
        key = (program, pitch, drum)
        if kind == "off":
            if key in sounding:
                synth.noteoff(sounding.pop(key), pitch)
            continue
        if drum:
            channel = DRUM_CHANNEL
        else:
            channel = next((c for c, q in channel_program.items() if q == program), None)
            if channel is None:
                channel = melodic_channels[next_channel % len(melodic_channels)]
                next_channel += 1
                synth.program_select(channel, font, 0, program)
                channel_program = {c: q for c, q in channel_program.items() if c != channel}
                channel_program[channel] = program
        synth.noteon(channel, pitch, velocity)
        sounding[key] = channel
    if position < total:
        out[position:] = np.frombuffer(synth.generate(total - position), np.float32).reshape(-1, 2)
    return out


def write_wav(audio: np.ndarray, sample_rate: int, path: str | os.PathLike) -> None:
    """Write float audio as 16-bit PCM WAV atomically (peak-normalised if it would clip)."""
    import soundfile

    from mt3.atomic import atomic_path

    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 0.99:
        audio = audio * (0.99 / peak)
    with atomic_path(path) as tmp:
        soundfile.write(tmp, audio, sample_rate, subtype="PCM_16", format="WAV")

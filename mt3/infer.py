"""Long audio to notes: stream, cut into segments, batch them through the jitted model, stitch.

``Transcriber`` compiles one function per (batch size, segment length): log-mel front end, encoder
and cached decoding of a batch of segments, all in a single ``jax.jit``. A file is read in blocks
(``audio.stream_audio``) and cut into consecutive segments (``audio.iter_segments``), so memory
holds one audio block and one batch whatever the file's length; while the device works on one
batch, the next is read. The decoded ids of every segment are then stitched into notes with MT3's
tie rules (``events.segment_tokens_to_notes``). Several files reuse the compiled function.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm import tqdm

from mt3.atomic import check_outputs
from mt3.audio import (
    FRAMES_PER_SECOND,
    HOP_SAMPLES,
    SAMPLE_RATE,
    audio_info,
    iter_segments,
    stream_audio,
)
from mt3.cache import enable_compilation_cache
from mt3.errors import Mt3Error
from mt3.events import segment_tokens_to_notes
from mt3.model.decoding import PHASE_LENGTH, DecodeOptions, decode, instrument_logit_bias
from mt3.model.store import load_model
from mt3.model.t5 import Transformer
from mt3.notes import Notes
from mt3.outputs import output_paths, write_outputs
from mt3.spectrogram import log_mel
from mt3.vocab import EOS_ID, parse_instruments, vocabulary


class TranscribeError(Mt3Error, ValueError):
    """Bad transcription options or output paths."""


@dataclasses.dataclass(frozen=True)
class TranscribeOptions:
    """batch_size: segments per device call; instruments: e.g. 'piano,bass,drums' or '0,33'
    to restrict the output (None: any instrument, as MT3)."""

    batch_size: int = 8
    decode: DecodeOptions = DecodeOptions()
    instruments: str | None = None

    def __post_init__(self):
        if self.batch_size < 1:
            raise TranscribeError(f"batch size must be at least 1, got {self.batch_size}")


@dataclasses.dataclass(frozen=True)
class Transcription:
    """Notes of one recording, with the raw ids of every segment and the decoder's counters.

    ``segments``: (start time = first frame / 125 s, ids as produced, EOS included if produced).
    """

    notes: Notes
    segments: list[tuple[float, list[int]]]
    invalid_events: int
    dropped_events: int
    duration_seconds: float


def trim_after_eos(ids: np.ndarray) -> list[int]:
    """Ids up to and including the first EOS (all of them when there is none)."""
    ids = np.asarray(ids).tolist()
    return ids[: ids.index(EOS_ID) + 1] if EOS_ID in ids else ids


class Transcriber:
    """Transcribes audio with one model; reuse it for many files."""

    def __init__(self, model: Transformer, options: TranscribeOptions = TranscribeOptions()):
        enable_compilation_cache()  # a second run skips most of the compilation (mt3.cache)
        self.model = model
        self.config = model.config
        self.options = options
        self.vocab = vocabulary(self.config.vocab)
        bias = None
        if options.instruments:
            programs, drums = parse_instruments(options.instruments)
            bias = instrument_logit_bias(self.vocab, self.config.vocab_size, programs, drums)
        self._graphdef, self._state = nnx.split(model)
        batch, max_length = options.batch_size, self.config.max_decode_length
        if options.decode.max_length is not None:
            max_length = min(options.decode.max_length, max_length)
        decode_options = dataclasses.replace(options.decode, max_length=max_length)
        graphdef = self._graphdef
        logit_bias = None if bias is None else jnp.asarray(bias)

        def transcribe_batch(state, samples, num_valid_frames):
            model = nnx.merge(graphdef, state)
            encoded = model.encode(log_mel(samples, num_valid_frames))
            cache = model.decoder.init_cache(encoded, max_length, PHASE_LENGTH)
            return decode(model.decoder.decode_step, cache, batch, decode_options, logit_bias)

        self._transcribe_batch = jax.jit(transcribe_batch)

    @property
    def segment_samples(self) -> int:
        return self.config.segment_frames * HOP_SAMPLES

    def segment_ids(
        self, segments: Iterable[tuple[int, np.ndarray, int]], progress: tqdm | None = None
    ) -> Iterator[tuple[int, list[int]]]:
        """(first frame, ids) per segment, for segments from ``audio.iter_segments``."""
        batch = self.options.batch_size
        pending = None  # (first frames, device result) of the batch in flight

        def finish(item):
            frames, result = item
            ids = np.asarray(result)
            if progress is not None:
                seconds = len(frames) * self.config.segment_frames / FRAMES_PER_SECOND
                progress.update(max(0.0, min(seconds, progress.total - progress.n)))
            return [(frame, trim_after_eos(row)) for frame, row in zip(frames, ids)]

        buffer = []
        for segment in segments:
            buffer.append(segment)
            if len(buffer) == batch:
                launched = self._launch(buffer)
                if pending is not None:
                    yield from finish(pending)
                pending, buffer = launched, []
        if buffer:
            launched = self._launch(buffer)
            if pending is not None:
                yield from finish(pending)
            pending = launched
        if pending is not None:
            yield from finish(pending)

    def _launch(self, segments):
        batch = self.options.batch_size
        samples = np.zeros((batch, self.segment_samples), np.float32)
        valid = np.ones(batch, np.int32)
        for row, (_, audio, frames) in enumerate(segments):
            samples[row] = audio
            valid[row] = frames
        result = self._transcribe_batch(self._state, samples, valid)
        return [frame for frame, _, _ in segments], result

    def transcribe(self, audio: str | os.PathLike | np.ndarray, *, progress: bool = False):
        """Notes for a file (any length, any format libsndfile reads) or a 16 kHz mono array."""
        if isinstance(audio, np.ndarray):
            chunks, seconds, name = (
                [audio.astype(np.float32).reshape(-1)],
                audio.size / SAMPLE_RATE,
                "audio",
            )
        else:
            _, seconds = audio_info(audio)
            chunks, name = stream_audio(audio), Path(audio).name
        bar = tqdm(
            total=round(seconds, 1),
            disable=not progress,
            desc=name[:40],
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s audio "
            "[{elapsed}<{remaining}, {rate_fmt}]",
            unit="s",
        )
        segments = []
        try:
            for frame, ids in self.segment_ids(
                iter_segments(chunks, self.config.segment_frames), bar
            ):
                segments.append((frame / FRAMES_PER_SECOND, ids))
        except BaseException:
            bar.leave = False  # clear the bar so that the error stands on its own line
            raise
        finally:
            bar.n = bar.total if bar.leave else bar.n
            bar.close()
        result = segment_tokens_to_notes(segments, self.config.vocab)
        return Transcription(
            result.notes, segments, result.invalid_events, result.dropped_events, seconds
        )


def write_token_dump(transcription: Transcription, path: str | os.PathLike) -> None:
    """``{"segments": [{"start_time", "tokens"}]}`` with the ids exactly as decoded."""
    import json

    from mt3.atomic import atomic_write_text

    payload = {"segments": [{"start_time": t, "tokens": ids} for t, ids in transcription.segments]}
    atomic_write_text(path, json.dumps(payload) + "\n")


def output_bases(audio_paths, output: str | os.PathLike) -> list[Path]:
    """Output path stems: ``OUT/<audio stem>`` per input, or ``OUT`` minus .mid for one input."""
    output = Path(output)
    if output.suffix.lower() in (".mid", ".midi"):
        if len(audio_paths) != 1:
            raise TranscribeError(f"-o {output}: a .mid path takes one input; give a folder")
        return [output.with_suffix("")]
    stems = [Path(a).stem for a in audio_paths]
    repeated = sorted({s for s in stems if stems.count(s) > 1})
    if repeated:
        raise TranscribeError(
            f"several inputs are named {repeated[0]}.*; their outputs would overwrite each other"
        )
    return [output / stem for stem in stems]


def check_variant(config, expected: str | None, checkpoint) -> None:
    """A model whose variant (or vocabulary) is not ``expected`` is an error naming both."""
    if expected and expected not in (config.name, config.vocab):
        raise TranscribeError(
            f"{checkpoint}: holds a {config.name} model (vocabulary {config.vocab}), "
            f"not {expected}; drop --variant or pick the matching checkpoint"
        )


def token_dump_path(dump_tokens: str | os.PathLike, audio, count: int) -> Path:
    """``--dump-tokens F.json``: F.json for one input, F.<audio stem>.json for several."""
    target = Path(dump_tokens)
    if count > 1:
        target = target.with_name(f"{target.stem}.{Path(audio).stem}{target.suffix}")
    return target


def transcribe_files(
    paths,
    bases,
    checkpoint,
    options: TranscribeOptions,
    formats=("midi",),
    *,
    variant: str | None = None,
    dump_tokens: str | None = None,
    reference: str | None = None,
    overwrite: bool = False,
    skip_existing: bool = False,
):
    """Transcribe files with one compiled model; yields (path, written paths, Transcription),
    or (path, existing paths, None) for a file skipped because its outputs exist.

    Before the model is loaded, every input is checked (readable audio, a readable reference)
    and every output: none may be an input, and existing ones need ``overwrite`` (replace) or
    ``skip_existing`` (keep them, transcribe the other files).
    """
    from mt3.notes import read_midi

    if checkpoint is None:  # the model `mt3 download` put in the cache
        from mt3.hub import default_checkpoint

        checkpoint = default_checkpoint(variant)
    planned = []
    for path, base in zip(paths, bases):
        outputs = output_paths(base, formats)
        if dump_tokens:
            outputs.append(token_dump_path(dump_tokens, path, len(paths)))
        planned.append(outputs)
    inputs = [*paths, *([reference] if reference else [])]
    existing = check_outputs([p for outs in planned for p in outs], inputs,
                             overwrite=overwrite, skip_existing=skip_existing)  # fmt: skip
    for path in paths:
        audio_info(path)
    reference_notes = read_midi(reference).notes if reference else None
    model = load_model(checkpoint)
    check_variant(model.config, variant, checkpoint)
    transcriber = Transcriber(model, options)
    for path, base, outputs in zip(paths, bases, planned):
        if existing and all(p in existing for p in outputs):
            yield path, outputs, None
            continue
        result = transcriber.transcribe(path, progress=True)
        written = write_outputs(
            result, base, formats, reference=reference_notes, title=Path(path).name
        )
        if dump_tokens:
            write_token_dump(result, outputs[-1])
            written.append(outputs[-1])
        yield path, written, result

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
import itertools
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
    find_audio,
    iter_segments,
    stream_audio,
)
from mt3.cache import enable_compilation_cache
from mt3.errors import Mt3Error
from mt3.events import segment_tokens_to_notes, tie_section_after
from mt3.model.decoding import (
    PHASE_LENGTH,
    DecodeOptions,
    decode,
    empty_rows,
    instrument_logit_bias,
    phase_limits,
    row_result,
    row_steps,
    start_rows,
)
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
    """batch_size: segments decoded at once (None: chosen from the device and the amount of audio,
    ``auto_batch_size``); instruments: e.g. 'piano,bass,drums' or '0,33' to restrict the output
    (None: any instrument, as MT3); continuous: refill a batch row as soon as its segment ends
    (the 'mt3' and 'greedy' searches; 'beam' always runs whole batches); context: 'none' decodes
    every segment on its own, as MT3; 'ties' opens each segment with the tie section of the
    notes still sounding at the end of the previous one (docs/mt3.md, "Segment context")."""

    batch_size: int | None = None
    decode: DecodeOptions = DecodeOptions()
    instruments: str | None = None
    continuous: bool = True
    context: str = "none"

    def __post_init__(self):
        if self.batch_size is not None and self.batch_size < 1:
            raise TranscribeError(f"batch size must be at least 1, got {self.batch_size}")
        if self.context not in CONTEXTS:
            choices = ", ".join(CONTEXTS)
            raise TranscribeError(f"context must be one of {choices}, got {self.context!r}")
        if self.context != "none" and not self.continuous:
            raise TranscribeError("segment context needs continuous batching")


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


# Rows decoded at once by default: enough to keep the device's matrix units busy (measured in
# benchmarks/transcribe.py: on 2 CPU cores 32 rows give 1.3x the ids/s of 8; a GPU wants more).
DEFAULT_BATCH = {"cpu": 32}
DEFAULT_ACCELERATOR_BATCH = 256
STEPS_PER_CALL = 16  # search steps per device call between refills of finished rows
ADMIT_DIVISOR = 8  # a start call encodes batch / 8 segments, once that many rows are free
SHRINK_DIVISOR = 8  # at the end of a job, rows move to a smaller batch once 1/8 are busy
CONTEXTS = ("none", "ties")
# With context, a file's segments form chains decoded in order, each segment opened by the tie
# section of the one before it; a chain's first segment starts with no context. Chains are as
# long as the read-ahead allows while giving every row work (``chain_length``).
MIN_CHAIN = 4
READ_AHEAD_SEGMENTS = 1024  # segments held in memory at most (134 MB of 16 kHz audio)
PREFIX_WIDTH = 128  # longest tie section forced; a longer one starts its segment with none


def auto_batch_size(num_segments: int, platform: str | None = None) -> int:
    """The device's batch, or the smallest power of two that holds ``num_segments``."""
    platform = platform or jax.default_backend()
    most = DEFAULT_BATCH.get(platform, DEFAULT_ACCELERATOR_BATCH)
    return max(1, min(most, 1 << (max(1, num_segments) - 1).bit_length()))


def chain_length(num_segments: int, batch: int) -> int:
    """Segments per chain: a chain per row, at least MIN_CHAIN, within the read-ahead."""
    most = max(MIN_CHAIN, max(READ_AHEAD_SEGMENTS, 8 * batch) // batch)
    return int(min(most, max(MIN_CHAIN, -(-num_segments // batch))))


@dataclasses.dataclass
class _Item:
    """One recording in flight: its segments' ids by first frame, and how many there are."""

    name: str
    seconds: float
    ids: dict = dataclasses.field(default_factory=dict)
    count: int | None = None  # known once its audio is read to the end

    @property
    def done(self) -> bool:
        return self.count is not None and len(self.ids) == self.count


def row_cache(model: Transformer, batch: int, max_length: int):
    """An empty decoder cache for ``batch`` rows of continuous batching."""
    config = model.config
    encoded = jnp.zeros((batch, config.segment_frames, config.emb_dim), jnp.float32)
    return model.decoder.init_cache(encoded, max_length, PHASE_LENGTH)


def encode_into_rows(model: Transformer, cache, samples, num_valid_frames, slots):
    """Encode new segments (log-mel, encoder) and write their cross-attention keys/values into
    rows ``slots`` of ``cache`` (a slot equal to the batch size is ignored)."""
    encoded = model.encode(log_mel(samples, num_valid_frames))
    keys, values = [], []
    for i, layer in enumerate(model.decoder.layers()):
        new_keys, new_values = layer.encoder_decoder_attention.project_kv(encoded)
        keys.append(cache.cross_keys[i].at[slots].set(new_keys, mode="drop"))
        values.append(cache.cross_values[i].at[slots].set(new_values, mode="drop"))
    return cache._replace(cross_keys=tuple(keys), cross_values=tuple(values))


def _advance(bar: tqdm, seconds: float) -> None:
    """Move the bar by a segment's seconds (the last segment of a file is shorter)."""
    if bar.total is not None:
        seconds = max(0.0, min(seconds, bar.total - bar.n))
    bar.update(seconds)


def _name_of(audio) -> str:
    return "audio" if isinstance(audio, np.ndarray) else Path(audio).name


def _seconds_of(audio) -> float:
    if isinstance(audio, np.ndarray):
        return audio.size / SAMPLE_RATE
    return audio_info(audio)[1]


class Transcriber:
    """Transcribes audio with one model; reuse it for many files.

    Segments of all the files given to ``transcribe_many`` form one stream. With continuous
    batching (the default for MT3's search and greedy decoding) the device holds ``batch_size``
    rows, each decoding one segment at its own position; every ``STEPS_PER_CALL`` steps the rows
    whose segment ended take the next segments of the stream (encoded on arrival), so no row
    waits for the longest segment of its batch and no file's last batch runs half empty.
    Results are the same as decoding each segment alone (up to float rounding).
    """

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
        self._logit_bias = None if bias is None else jnp.asarray(bias)
        self._graphdef, self._state = nnx.split(model)
        max_length = self.config.max_decode_length
        if options.decode.max_length is not None:
            max_length = min(options.decode.max_length, max_length)
        self.max_length = max_length
        self.decode_options = dataclasses.replace(options.decode, max_length=max_length)
        self.continuous = options.continuous and options.decode.mode in ("mt3", "greedy")
        if options.context != "none" and not self.continuous:
            raise TranscribeError("segment context needs the 'mt3' or 'greedy' search")
        if options.context != "none" and not self.vocab.config.include_ties:
            raise TranscribeError(
                f"segment context needs a vocabulary with ties ({self.config.vocab!r} has none)"
            )
        self._compiled = {}

    @property
    def segment_samples(self) -> int:
        return self.config.segment_frames * HOP_SAMPLES

    def batch_size_for(self, seconds: float | None) -> int:
        if self.options.batch_size is not None:
            return self.options.batch_size
        if seconds is None:
            return auto_batch_size(1 << 30)
        segments = int(np.ceil(seconds * FRAMES_PER_SECOND / self.config.segment_frames)) + 1
        return auto_batch_size(segments)

    # -- whole batches (beam search, or continuous=False) ------------------------------------

    def _batch_function(self, batch: int):
        key = ("batch", batch)
        if key not in self._compiled:
            graphdef, options, bias = self._graphdef, self.decode_options, self._logit_bias
            max_length = self.max_length

            def transcribe_batch(state, samples, num_valid_frames):
                model = nnx.merge(graphdef, state)
                encoded = model.encode(log_mel(samples, num_valid_frames))
                cache = model.decoder.init_cache(encoded, max_length, PHASE_LENGTH)
                return decode(model.decoder.decode_step, cache, batch, options, bias)

            self._compiled[key] = jax.jit(transcribe_batch)
        return self._compiled[key]

    def segment_ids(
        self,
        segments: Iterable[tuple[int, np.ndarray, int]],
        progress: tqdm | None = None,
        batch: int | None = None,
    ) -> Iterator[tuple[int, list[int]]]:
        """(first frame, ids) per segment, for segments from ``audio.iter_segments``, decoded in
        whole batches (the next batch is read while the device works on one)."""
        batch = batch or self.options.batch_size or DEFAULT_BATCH.get(jax.default_backend(), 8)
        function = self._batch_function(batch)
        pending = None  # (first frames, device result) of the batch in flight

        def launch(segments):
            samples = np.zeros((batch, self.segment_samples), np.float32)
            valid = np.ones(batch, np.int32)
            for row, (_, audio, frames) in enumerate(segments):
                samples[row] = audio
                valid[row] = frames
            return [frame for frame, _, _ in segments], function(self._state, samples, valid)

        def finish(item):
            frames, result = item
            ids = np.asarray(result)
            if progress is not None:
                seconds = len(frames) * self.config.segment_frames / FRAMES_PER_SECOND
                _advance(progress, seconds)
            return [(frame, trim_after_eos(row)) for frame, row in zip(frames, ids)]

        buffer = []
        for segment in segments:
            buffer.append(segment)
            if len(buffer) == batch:
                launched = launch(buffer)
                if pending is not None:
                    yield from finish(pending)
                pending, buffer = launched, []
        if buffer:
            launched = launch(buffer)
            if pending is not None:
                yield from finish(pending)
            pending = launched
        if pending is not None:
            yield from finish(pending)

    # -- continuous batching -----------------------------------------------------------------

    @staticmethod
    @jax.jit
    def _shrink(rows, keep):
        """The rows ``keep`` [B'] of a batch of rows (every leaf is batch-first)."""
        return jax.tree.map(lambda leaf: leaf[keep], rows)

    def _row_functions(self, batch: int):
        """(empty rows, start segments in rows, run search steps) for ``batch`` rows."""
        key = ("rows", batch)
        if key in self._compiled:
            return self._compiled[key]
        graphdef, options, bias = self._graphdef, self.decode_options, self._logit_bias
        max_length = self.max_length

        def empty(state):
            model = nnx.merge(graphdef, state)
            return empty_rows(batch, max_length, row_cache(model, batch, max_length))

        def start(state, rows, samples, num_valid_frames, slots, prefix, prefix_length):
            model = nnx.merge(graphdef, state)
            cache = encode_into_rows(model, rows.cache, samples, num_valid_frames, slots)
            return start_rows(rows, slots, cache, prefix, prefix_length)

        def steps(state, rows, limit):
            model = nnx.merge(graphdef, state)
            step = model.decoder.decode_rows
            return row_steps(step, rows, STEPS_PER_CALL, limit, options, logit_bias=bias)

        functions = (
            jax.jit(empty),
            jax.jit(start, donate_argnums=1),
            jax.jit(steps, static_argnums=2, donate_argnums=1),
        )
        self._compiled[key] = functions
        return functions

    def _continuous(self, stream, batch: int, progress: tqdm | None):
        """Run the stream of (item, first frame, samples, valid frames, previous frame) through
        ``batch`` rows; yields (item, first frame, ids) as segments end.

        A segment with a previous frame (segment context, ``TranscribeOptions.context``) waits
        until that segment of its item has ended and opens with its tie section; the others
        start as soon as rows are free. Once the stream is read to its end and at most an eighth
        of the rows are needed, the busy rows move to a smaller batch (a power of two that holds
        them): the last, longest segments of a job then run at the cost of their own count."""
        empty, start, steps = self._row_functions(batch)
        rows = empty(self._state)
        # segments encoded per start call (with context, successors arrive one by one)
        admit = 1 if self.options.context != "none" else max(1, batch // ADMIT_DIVISOR)
        limits = phase_limits(self.max_length, PHASE_LENGTH)
        holder = [None] * batch  # (item, first frame) of the segment in each row
        index = np.zeros(batch, np.int64)  # each row's position, as of the last harvest
        waiting = []  # segments read ahead, not yet in a row
        finished = []  # (item, first frame, ids) harvested, not yet yielded
        ended_ids = {}  # (item, first frame) -> ids of ended segments that a successor awaits
        exhausted = False
        frames = self.config.segment_frames
        segment_seconds = frames / FRAMES_PER_SECOND
        most_waiting = max(batch, READ_AHEAD_SEGMENTS)

        def is_ready(segment):
            return segment[4] is None or (segment[0], segment[4]) in ended_ids

        def ready():
            return [segment for segment in waiting if is_ready(segment)]

        def read_ahead():
            nonlocal exhausted
            count = len(ready())
            while not exhausted and len(waiting) < most_waiting:
                if len(waiting) >= batch and count >= batch:
                    break
                segment = next(stream, None)
                if segment is None:
                    exhausted = True
                else:
                    waiting.append(segment)
                    count += is_ready(segment)

        def prefix_of(item, previous):
            section = tie_section_after(ended_ids.pop((item, previous)), self.config.vocab)
            return section if len(section) <= PREFIX_WIDTH else []

        read_ahead()
        while True:
            free = [row for row in range(batch) if holder[row] is None]
            busy = batch - len(free)
            candidates = ready()
            while candidates and free:
                stuck = exhausted or len(waiting) >= most_waiting or not busy
                if len(candidates) < admit and not stuck or len(free) < admit and not exhausted:
                    break
                group, candidates = candidates[:admit], candidates[admit:]
                group = group[: len(free)]
                waiting[:] = [w for w in waiting if not any(w is g for g in group)]
                samples = np.zeros((admit, self.segment_samples), np.float32)
                valid = np.ones(admit, np.int32)
                slots = np.full(admit, batch, np.int32)  # slot == batch: ignored
                prefix = np.zeros((admit, PREFIX_WIDTH), np.int32)
                prefix_length = np.zeros(admit, np.int32)
                for k, (item, frame, audio, valid_frames, previous) in enumerate(group):
                    samples[k], valid[k], slots[k] = audio, valid_frames, free[k]
                    holder[free[k]] = (item, frame)
                    index[free[k]] = 0
                    if previous is not None:
                        section = prefix_of(item, previous)
                        prefix[k, : len(section)], prefix_length[k] = section, len(section)
                rows = start(self._state, rows, samples, valid, slots, prefix, prefix_length)
                free, busy = free[len(group) :], busy + len(group)
                if not candidates:
                    read_ahead()
                    candidates = ready()
            busy = [row for row in range(batch) if holder[row] is not None]
            needed = len(busy) + sum(1 for w in waiting if w[4] is None)  # a chain needs one row
            if exhausted and busy and needed <= batch // SHRINK_DIVISOR:
                smaller = 1 << (needed - 1).bit_length()
                keep = busy + [row for row in range(batch) if holder[row] is None]
                keep = np.array(keep[:smaller], np.int32)
                rows = self._shrink(rows, keep)
                holder, index, batch = [holder[r] for r in keep], index[keep], smaller
                empty, start, steps = self._row_functions(batch)
                admit = 1 if self.options.context != "none" else max(1, batch // ADMIT_DIVISOR)
                busy = list(range(len(busy)))
            if not busy:
                yield from finished
                return
            deepest = int(index[busy].max())
            limit = next(limit for limit in limits if limit > deepest)
            rows = steps(self._state, rows, limit)
            yield from finished  # the caller's work on them overlaps the device's
            finished = []
            read_ahead()  # reads the audio while the device decodes
            active = np.asarray(rows.active)
            index = np.asarray(rows.index).astype(np.int64)
            ended = [row for row in busy if not active[row]]
            if ended:
                tokens = np.asarray(rows.tokens)
                finished_end = np.asarray(rows.finished_end)
                for row in ended:
                    item, frame = holder[row]
                    holder[row] = None
                    ids = row_result(tokens[row], index[row], finished_end[row])
                    finished.append((item, frame, ids))
                    if self.options.context != "none":
                        ended_ids[(item, frame)] = ids  # its successor may not be read yet
                    if progress is not None:
                        _advance(progress, segment_seconds)

    # -- files --------------------------------------------------------------------------------

    def transcribe_many(
        self, audios: Iterable, *, progress: bool = False, total_seconds: float | None = None
    ) -> Iterator[Transcription]:
        """Transcriptions of several files (or 16 kHz mono arrays), in order, from one stream
        of segments; each is yielded as soon as it and the ones before it are done.

        ``audios`` may be a lazy iterable (read only as the stream reaches each entry); the
        progress bar and the batch size then use ``total_seconds`` if given. For a list, the
        total is read from the files' headers."""
        known = {}  # seconds of each listed input, read from its header once
        if isinstance(audios, (list, tuple)):
            known = {number: _seconds_of(audio) for number, audio in enumerate(audios)}
            total_seconds = sum(known.values()) if total_seconds is None else total_seconds
        bar = tqdm(
            total=None if total_seconds is None else round(total_seconds, 1),
            disable=not progress,
            desc=_name_of(audios[0])[:40]
            if isinstance(audios, (list, tuple)) and len(audios) == 1
            else "transcribe",
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s audio "
            "[{elapsed}<{remaining}, {rate_fmt}]"
            if total_seconds is not None
            else "{desc}: {n:.0f} s audio [{elapsed}, {rate_fmt}]",
            unit="s",
        )
        frames = self.config.segment_frames
        items: list[_Item] = []

        def stream():
            for number, audio in enumerate(audios):
                if isinstance(audio, np.ndarray):
                    chunks = [audio.astype(np.float32).reshape(-1)]
                else:
                    chunks = stream_audio(audio)
                seconds = known[number] if number in known else _seconds_of(audio)
                items.append(_Item(_name_of(audio), seconds))
                count = 0
                for frame, samples, valid in iter_segments(chunks, frames):
                    head = self.options.context == "none" or count % chain == 0
                    yield number, frame, samples, valid, None if head else frame - frames
                    count += 1
                items[number].count = count

        def finish(number):
            item = items[number]
            segments = [(f / FRAMES_PER_SECOND, item.ids[f]) for f in sorted(item.ids)]
            item.ids = {}
            result = segment_tokens_to_notes(segments, self.config.vocab)
            return Transcription(
                result.notes, segments, result.invalid_events, result.dropped_events, item.seconds
            )

        next_item = 0
        batch = self.batch_size_for(total_seconds)
        segments = 1 << 30 if total_seconds is None else total_seconds * FRAMES_PER_SECOND / frames
        chain = chain_length(int(segments) + 1, batch)
        if self.options.context != "none" and self.options.batch_size is None:
            batch = min(batch, auto_batch_size(-(-(int(segments) + 1) // chain)))  # row per chain
        try:
            if self.continuous:
                decoded = self._continuous(stream(), batch, bar)
            else:
                decoded = self._batched(stream(), bar)
            for number, frame, ids in decoded:
                items[number].ids[frame] = ids
                while next_item < len(items) and items[next_item].done:
                    yield finish(next_item)
                    next_item += 1
            while next_item < len(items):  # anything not yet yielded is complete now
                yield finish(next_item)
                next_item += 1
        except BaseException:
            bar.leave = False  # clear the bar so that the error stands on its own line
            raise
        finally:
            if bar.total is not None:
                bar.n = bar.total if bar.leave else bar.n
            bar.close()

    def _batched(self, stream, progress):
        """The stream through whole batches, one file at a time (as MT3 decodes)."""
        for number, segments in itertools.groupby(stream, key=lambda segment: segment[0]):
            segments = (segment[1:4] for segment in segments)
            for frame, ids in self.segment_ids(segments, progress):
                yield number, frame, ids

    def transcribe(self, audio: str | os.PathLike | np.ndarray, *, progress: bool = False):
        """Notes for a file (any length, any format libsndfile reads) or a 16 kHz mono array."""
        (result,) = self.transcribe_many([audio], progress=progress)
        return result


def write_token_dump(transcription: Transcription, path: str | os.PathLike) -> None:
    """``{"segments": [{"start_time", "tokens"}]}`` with the ids exactly as decoded."""
    import json

    from mt3.atomic import atomic_write_text

    payload = {"segments": [{"start_time": t, "tokens": ids} for t, ids in transcription.segments]}
    atomic_write_text(path, json.dumps(payload) + "\n")


def expand_inputs(inputs=(), files: str | os.PathLike | None = None) -> list[tuple[Path, Path]]:
    """(audio file, output name) per input. A file is named by its stem; a folder gives every
    audio file below it (``audio.AUDIO_SUFFIXES``), named by its path inside the folder, so a
    corpus keeps its layout under -o. ``files``: a text file with one path per line (relative
    paths are taken from the current folder; blank lines and lines starting with # are
    skipped)."""
    paths = [Path(p) for p in inputs]
    if files is not None:
        try:
            lines = Path(files).read_text().splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise TranscribeError(f"--files {files}: cannot read the list ({error})") from None
        paths += [Path(line.strip()) for line in lines if line.strip() and line[0] != "#"]
    if not paths:
        raise TranscribeError("no input: give audio files or folders, or --files LIST")
    found = []
    for path in paths:
        if path.is_dir():
            inside = find_audio(path)
            if not inside:
                raise TranscribeError(f"{path}: a folder with no audio files in it")
            found += [(p, p.relative_to(path).with_suffix("")) for p in inside]
        else:
            found.append((path, Path(path.stem)))
    return found


def parse_shard(spec: str) -> tuple[int, int]:
    """'I/N' -> (I, N), 0 <= I < N: the share of the inputs this process transcribes."""
    try:
        index, count = (int(part) for part in spec.split("/"))
    except ValueError:
        index, count = -1, 0
    if not 0 <= index < count:
        raise TranscribeError(f"--shard takes I/N with 0 <= I < N (e.g. 0/4), got {spec!r}")
    return index, count


def take_shard(inputs: list, spec: str | None) -> list:
    """Every N-th input starting at the I-th (sorted by path first, so that every process of a
    job array, given the same inputs, splits them the same way and the shares do not overlap)."""
    if spec is None:
        return inputs
    index, count = parse_shard(spec)
    return sorted(inputs, key=lambda pair: str(pair[0]))[index::count]


def output_bases(audio_paths, output: str | os.PathLike, names=None) -> list[Path]:
    """Output path stems: ``OUT/<name>`` per input (``names`` default to the audio stems), or
    ``OUT`` minus .mid for one input."""
    output = Path(output)
    if output.suffix.lower() in (".mid", ".midi"):
        if len(audio_paths) != 1:
            raise TranscribeError(f"-o {output}: a .mid path takes one input; give a folder")
        return [output.with_suffix("")]
    names = [Path(a).stem for a in audio_paths] if names is None else [str(n) for n in names]
    seen = set()
    for name in names:
        if name in seen:
            raise TranscribeError(
                f"several inputs are named {name}.*; their outputs would overwrite each other"
            )
        seen.add(name)
    return [output / name for name in names]


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
    todo = [
        index
        for index, outputs in enumerate(planned)
        if not (existing and all(p in existing for p in outputs))
    ]
    for index in todo:
        audio_info(paths[index])
    reference_notes = read_midi(reference).notes if reference else None
    if not todo:  # everything exists already: no model needed
        for path, outputs in zip(paths, planned):
            yield path, outputs, None
        return
    todo_set = set(todo)
    model = load_model(checkpoint)
    check_variant(model.config, variant, checkpoint)
    transcriber = Transcriber(model, options)
    results = transcriber.transcribe_many([paths[i] for i in todo], progress=True)
    for index, (path, base, outputs) in enumerate(zip(paths, bases, planned)):
        if index not in todo_set:
            yield path, outputs, None
            continue
        result = next(results)
        written = write_outputs(
            result, base, formats, reference=reference_notes, title=Path(path).name
        )
        if dump_tokens:
            write_token_dump(result, outputs[-1])
            written.append(outputs[-1])
        yield path, written, result

"""Transcription speed: whole jobs from process start, and the steady state, on this machine.

    python benchmarks/transcribe.py                 # released weights if ../shared has them
    python benchmarks/transcribe.py --random        # random weights driven by reference ids

The test set is ``../shared/realdev`` (nine real recordings of at most 30 s: piano, guitar, drums,
chamber music) plus two 30 s bands rendered with the General MIDI soundfont (Slakh2100's
Track00001 from ../shared/dataset_samples, and a generated band); without ../shared, generated
pieces only. Every piece comes with its reference MIDI.

Weights: Magenta's released ``mt3`` checkpoint (``--checkpoint``, converted into a temporary
folder), or with ``--random`` (or when the checkpoint is absent) a random network whose decoder is
nudged to emit each segment's reference ids and stop at their EOS, so it runs as many steps as a
trained model on that music would.

The benchmark runs with the allocator the ``mt3`` command uses (tcmalloc where installed,
``mt3/allocator.py``; ``MT3_ALLOCATOR=system`` for glibc's).

Printed, one table:
- ``mt3 transcribe`` of the whole folder from process start (imports, parameter load, compilation,
  audio reading, decoding, MIDI writing): first with an empty compilation cache (a first run ever),
  then with the cache warm; and a 2 s file with the cache warm;
- the steady state (compiled, in one process) on the piano pieces, on the bands and on everything,
  with continuous batching (the default) and with whole batches of 8 segments (MT3's scheduling),
  as ids per second, real-time factor and the share of this machine's float32 matmul peak, and the
  fraction of segments whose ids are identical between the two schedulings.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import soundfile
from flax import nnx

from mt3.allocator import use_tcmalloc
from mt3.audio import SAMPLE_RATE, load_audio
from mt3.config import ModelConfig, get_variant
from mt3.events import notes_to_segment_tokens
from mt3.infer import TranscribeOptions, Transcriber, encode_into_rows, row_cache
from mt3.model.decoding import PHASE_LENGTH, empty_rows, row_steps, start_rows
from mt3.model.store import load_model, save_model
from mt3.model.t5 import Transformer
from mt3.notes import read_midi, write_midi
from mt3.render import render_notes

sys.path.insert(0, str(Path(__file__).parent))
from audio import best_time, generated_piece  # noqa: E402  (benchmarks/audio.py)

SHARED = Path(__file__).resolve().parents[2] / "shared"
RELEASED = SHARED / "checkpoints/mt3"
SLAKH = SHARED / "dataset_samples/slakh/babyslakh_16k/Track00001/all_src.mid"
FORCE = 1e4  # added to the reference id's logit: the search then emits the reference ids


# ----------------------------------------------------------------------------------------------
# The pieces


def write_pieces(folder: Path, seconds: float = 30.0) -> None:
    """16 kHz WAVs with their reference MIDI (NAME.wav + NAME.mid) in ``folder``."""
    realdev = SHARED / "realdev"
    if (realdev / "audio").is_dir():
        for wav in sorted((realdev / "audio").glob("*.wav")):
            audio = load_audio(wav)[: int(seconds * SAMPLE_RATE)]
            soundfile.write(folder / wav.name, audio, SAMPLE_RATE)
            write_midi(
                read_midi(realdev / "refs" / f"{wav.stem}.mid").notes, folder / f"{wav.stem}.mid"
            )
    bands = [("band_generated", generated_piece(seconds, seed=1))]
    if SLAKH.is_file():
        bands.append(("band_slakh_track00001", read_midi(SLAKH).notes))
    for name, notes in bands:
        notes = notes.select(notes.start < seconds)
        notes = notes.replace(end=np.minimum(notes.end, seconds))
        audio = render_notes(notes, SAMPLE_RATE).mean(axis=1)[: int(seconds * SAMPLE_RATE)]
        soundfile.write(folder / f"{name}.wav", audio, SAMPLE_RATE)
        write_midi(notes, folder / f"{name}.mid")


def reference_ids(audio: np.ndarray, midi: Path, config: ModelConfig) -> list[list[int]]:
    notes = read_midi(midi).notes
    segments = notes_to_segment_tokens(
        notes, config.vocab, num_samples=audio.size, segment_frames=config.segment_frames,
        max_length=None,
    )  # fmt: skip
    return [s.tokens[: config.max_decode_length] for s in segments]


# ----------------------------------------------------------------------------------------------
# Random weights, driven by the reference ids


class ForcedTranscriber(Transcriber):
    """A Transcriber whose decoder emits given ids (continuous batching only): each segment's
    reference ids ride along in the rows' cache and get a large logit bonus."""

    def __init__(self, model, options, targets_by_segment):
        super().__init__(model, options)
        self.queue = list(targets_by_segment)  # in stream order, as the rows admit them

    def _row_functions(self, batch):
        key = ("forced", batch)
        if key in self._compiled:
            return self._compiled[key]
        graphdef, options, max_length = self._graphdef, self.decode_options, self.max_length
        length = max_length + 1

        def empty(state):
            cache = row_cache(nnx.merge(graphdef, state), batch, self.max_length)
            return empty_rows(
                batch, self.max_length, (cache, jnp.zeros((batch, length), jnp.int32))
            )

        def start(state, rows, samples, valid, slots, targets):
            cache, old_targets = rows.cache
            cache = encode_into_rows(nnx.merge(graphdef, state), cache, samples, valid, slots)
            return start_rows(rows, slots, (cache, old_targets.at[slots].set(targets, mode="drop")))

        def steps(state, rows, limit):
            model = nnx.merge(graphdef, state)

            def forced(tokens, cache, positions, limit):
                cache, targets = cache
                logits, cache = model.decoder.decode_rows(tokens, cache, positions, limit)
                wanted = targets[jnp.arange(tokens.shape[0]), positions]
                return logits + jax.nn.one_hot(wanted, logits.shape[-1]) * FORCE, (cache, targets)

            return row_steps(forced, rows, 16, limit, options)

        start_jit = jax.jit(start, donate_argnums=1)

        def start_with_targets(state, rows, samples, valid, slots, prefix, prefix_length):
            del prefix, prefix_length  # no segment context: the ids are given
            targets = np.zeros((slots.size, length), np.int32)
            targets[:, 0] = 1  # EOS at once for padding slots
            for k in range(int(np.sum(slots < batch))):
                ids = self.queue.pop(0)
                targets[k, : len(ids)] = ids
            return start_jit(state, rows, samples, valid, slots, targets)

        functions = (
            jax.jit(empty),
            start_with_targets,
            jax.jit(steps, static_argnums=2, donate_argnums=1),
        )
        self._compiled[key] = functions
        return functions


# ----------------------------------------------------------------------------------------------
# FLOPs


def matmul_flops_per_second(repeats: int = 3) -> float:
    a = jnp.ones((2048, 2048), jnp.float32)
    product = jax.jit(lambda x: x @ x)
    seconds = best_time(lambda: product(a).block_until_ready(), repeats + 3)
    return 2 * 2048**3 / seconds


def encoder_flops(config: ModelConfig, frames: int) -> float:
    d, j, f = config.emb_dim, config.joined_dim, config.mlp_dim
    per_layer = 2 * frames * (4 * d * j + 3 * d * f) + 2 * 2 * frames * frames * j
    return 2 * frames * config.input_depth * d + config.num_encoder_layers * per_layer


def decoder_step_flops(config: ModelConfig, cache_length: int, frames: int) -> float:
    """Per id, as computed (self-attention over ``cache_length`` positions, masked)."""
    d, j, f = config.emb_dim, config.joined_dim, config.mlp_dim
    per_layer = 2 * (6 * d * j + 3 * d * f) + 2 * 2 * (cache_length + frames) * j
    return config.num_decoder_layers * per_layer + 2 * d * config.vocab_size


# ----------------------------------------------------------------------------------------------
# Whole jobs from process start


def child(folder: Path, model_dir: Path, out: Path, random: bool) -> None:
    """``mt3 transcribe FOLDER`` for random weights: the same work with forced ids."""
    model = load_model(model_dir)
    config = model.config
    wavs = sorted(folder.glob("*.wav"))
    audios = [load_audio(w) for w in wavs]
    targets = [
        ids for a, w in zip(audios, wavs) for ids in reference_ids(a, w.with_suffix(".mid"), config)
    ]
    transcriber = ForcedTranscriber(model, TranscribeOptions(), targets)
    out.mkdir(parents=True, exist_ok=True)
    for wav, result in zip(wavs, transcriber.transcribe_many(audios)):
        write_midi(result.notes, out / f"{wav.stem}.mid")


def whole_job(command: list[str], home: Path) -> float:
    env = {**os.environ, "MT3_HOME": str(home)}
    began = time.perf_counter()
    subprocess.run(
        command, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - began


# ----------------------------------------------------------------------------------------------


def row(name, seconds, audio, ids=None, flops=None, peak=None, note="") -> None:
    rate = f"{ids / seconds:8.0f}" if ids else f"{'':>8}"
    gflops = f"{flops / seconds / 1e9:8.1f}" if flops else f"{'':>8}"
    share = f"{flops / seconds / peak:6.0%}" if flops else f"{'':>6}"
    print(f"| {name:<44} | {seconds:7.1f} | {audio:6.0f} | {audio / seconds:6.1f}x | {rate} | "
          f"{gflops} | {share} | {note}")  # fmt: skip


def main() -> None:
    use_tcmalloc([sys.executable, *sys.argv])  # the allocator the mt3 command runs with
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(RELEASED), help="a T5X mt3 checkpoint")
    parser.add_argument("--random", action="store_true", help="random weights, forced ids")
    parser.add_argument("--batch-size", type=int, help="rows (default: mt3.infer's choice)")
    parser.add_argument("--skip-jobs", action="store_true", help="only the steady state")
    parser.add_argument("--pieces", help="a folder of NAME.wav + NAME.mid to use instead")
    parser.add_argument(
        "--repeat", type=int, default=1, help="also the steady state of all pieces N times over"
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        folder, model_dir, out = map(Path, args.child)
        return child(folder, model_dir, out, True)

    random = args.random or not Path(args.checkpoint, "checkpoint").is_file()
    work = Path(tempfile.mkdtemp(prefix="mt3-bench-"))
    pieces, models = work / "pieces", work / "model"
    if args.pieces:
        pieces = Path(args.pieces)
    else:
        pieces.mkdir()
        write_pieces(pieces)
    config = get_variant("mt3")
    if random:
        save_model(Transformer(config, rngs=nnx.Rngs(0)), models)
        weights = "random weights, decoder driven by the reference ids"
    else:
        convert = [sys.executable, "-m", "mt3", "convert-checkpoint", args.checkpoint, str(models)]
        subprocess.run([*convert, "--variant", "mt3"], check=True, stdout=subprocess.DEVNULL)
        weights = f"released weights ({args.checkpoint})"
    wavs = sorted(pieces.glob("*.wav"))
    audios = {w.stem: load_audio(w) for w in wavs}
    total = sum(a.size for a in audios.values()) / SAMPLE_RATE
    device = f"{jax.devices()[0].device_kind} ({jax.default_backend()}, {os.cpu_count()} CPU cores)"
    peak = matmul_flops_per_second()
    print(f"mt3 transcription speed on {device}; {weights}")
    print(f"float32 matmul peak (2048^3): {peak / 1e9:.0f} GFLOP/s")
    print(f"pieces: {len(wavs)} ({', '.join(audios)}), {total:.0f} s of audio\n")
    print(f"| {'what':<44} | {'wall s':>7} | {'audio':>6} | {'speed':>7} | {'ids/s':>8} | "
          f"{'GFLOP/s':>8} | {'peak':>6} |")  # fmt: skip
    print(f"|{'-' * 46}|{'-' * 9}|{'-' * 8}|{'-' * 9}|{'-' * 10}|{'-' * 10}|{'-' * 8}|")

    if not args.skip_jobs:
        home, out = work / "home", work / "out"
        if random:
            command = [sys.executable, __file__, "--child", str(pieces), str(models), str(out)]
        else:
            command = [sys.executable, "-m", "mt3", "transcribe", str(pieces), "-o", str(out),
                       "--checkpoint", str(models), "--overwrite"]  # fmt: skip
        row("whole folder, first run (empty compile cache)", whole_job(command, home), total)
        row("whole folder, cache warm", whole_job(command, home), total)
        for label, clip_audio in (
            ("2 s of noise", np.random.default_rng(0).normal(0, 0.1, 2 * SAMPLE_RATE)),
            ("2 s of dense band music", audios[wavs[0].stem][: 2 * SAMPLE_RATE]),
        ):
            clip = work / f"clip-{len(label)}"
            clip.mkdir()
            soundfile.write(clip / "clip.wav", clip_audio.astype(np.float32), SAMPLE_RATE)
            write_midi(read_midi(wavs[0].with_suffix(".mid")).notes, clip / "clip.mid")
            if random:
                command = [sys.executable, __file__, "--child", str(clip), str(models), str(out)]
            else:
                command = [sys.executable, "-m", "mt3", "transcribe", str(clip / "clip.wav"),
                           "-o", str(out), "--checkpoint", str(models), "--overwrite"]  # fmt: skip
            whole_job(command, home)
            row(f"{label}, second call (cache warm)", whole_job(command, home), 2.0)

    model = load_model(models)
    frames = config.segment_frames
    groups = {
        "piano": [n for n in audios if n.startswith("piano")],
        "bands": [n for n in audios if n.startswith("band")],
        "all pieces": list(audios),
    }
    if args.repeat > 1:
        groups[f"all pieces x{args.repeat}"] = list(audios) * args.repeat
    targets = {n: reference_ids(audios[n], pieces / f"{n}.mid", config) for n in audios}

    def run(names, continuous, batch_size=args.batch_size):
        """Seconds for the pieces ``names`` once compiled (a first pass compiles), results."""
        options = TranscribeOptions(batch_size=batch_size, continuous=continuous)
        forced = [t for n in names for t in targets[n]]
        t = ForcedTranscriber(model, options, forced) if random else Transcriber(model, options)
        list(t.transcribe_many([audios[n] for n in names]))
        if random:
            t.queue = list(forced)
        began = time.perf_counter()
        results = list(t.transcribe_many([audios[n] for n in names]))
        return time.perf_counter() - began, results

    kept = {}
    for label, names in groups.items():
        if not names:
            continue
        seconds, results = run(names, True)
        segments = sum(len(r.segments) for r in results)
        ids = sum(len(s) for r in results for _, s in r.segments)
        flops = segments * encoder_flops(config, frames) + ids * decoder_step_flops(
            config, PHASE_LENGTH, frames
        )
        audio = sum(audios[n].size for n in names) / SAMPLE_RATE
        row(f"steady state, {label}", seconds, audio, ids, flops, peak)
        kept[label] = (results, ids, flops, audio)
    if not random:
        results, ids, flops, audio = kept["all pieces"]
        seconds, batched = run(groups["all pieces"], False, 8)
        same = sum(a == b for r, q in zip(results, batched) for a, b in zip(r.segments, q.segments))
        count = sum(len(r.segments) for r in results)
        note = f"identical segments {same}/{count} ({same / count:.1%})"
        row("steady state, all, whole batches of 8 (MT3)", seconds, audio, ids, flops, peak, note)


if __name__ == "__main__":
    main()

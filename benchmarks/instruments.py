"""Multi-instrument accuracy with and without segment context, with the released weights.

    python benchmarks/instruments.py                       # ../shared/checkpoints/mt3, converted
    python benchmarks/instruments.py --model converted/mt3 # an already converted model folder

Two evaluation sets, every piece with its reference MIDI:
- ``realdev``: ``../shared/realdev`` (real recordings: piano, guitar, drums, chamber music; it
  has no band recording);
- ``held-out``: renders made here with FluidR3_GM (Debian's ``fluid-soundfont-gm``), a soundfont
  that ``mt3 prepare synth-*`` never uses: three string quartet openings from music21's corpus
  (Haydn op. 74/1, Mozart K. 80, Beethoven op. 18/1; the chorales are the only corpus music used
  for training), three generated ensembles and four generated bands (``mt3.data.synth``, seeds
  far from any prepared set), and Slakh2100's Track00001 MIDI from ../shared/dataset_samples.
  Each piece is its first 30 s.

For each ``--context`` (none = MT3, ties = mt3.infer's segment context), the table gives per
group the mean onset F1, onset+offset F1 and multi-instrument F1 (onset + offset + program, at
the full and midi_class granularities), and the decoding time of everything (compiled, this
machine). A last pair of rows times one 30 s file alone, the worst case for segment context.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mt3.audio import load_audio
from mt3.data.synth import generate_piece
from mt3.infer import CONTEXTS, TranscribeOptions, Transcriber
from mt3.metrics import note_scores, score
from mt3.model.store import load_model
from mt3.notes import Notes, concatenate, read_midi, read_notes, write_midi
from mt3.render import render_notes, write_wav

SHARED = Path(__file__).resolve().parents[2] / "shared"
FLUID = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
SECONDS = 30.0
QUARTETS = (  # music21 corpus work, quarter notes per minute
    ("haydn/opus74no1/movement1", 120),
    ("mozart/k80/movement1", 70),
    ("beethoven/opus18no1/movement1", 160),
)
METRICS = {
    "onset": "Onset F1",
    "on+off": "Onset + offset F1",
    "multi full": "Onset + offset + program F1 (full)",
    "multi class": "Onset + offset + program F1 (midi_class)",
}


def quartet(work: str, quarters_per_minute: float) -> Notes:
    """The first 30 s of a string quartet: violins 40, viola 41, cello 42."""
    from music21 import corpus

    seconds_per_quarter = 60.0 / quarters_per_minute
    rng = np.random.default_rng(0)
    rows = []
    for part in corpus.parse(work).parts:
        label = (part.partName or "").lower()
        program = 42 if "cello" in label else 41 if "viola" in label else 40
        for element in part.stripTies().flatten().notes:
            start = float(element.offset) * seconds_per_quarter
            length = float(element.quarterLength) * seconds_per_quarter
            if start >= SECONDS or length <= 0:
                continue
            for pitch in element.pitches:
                end = start + min(length, SECONDS - start) * 0.95
                rows.append(dict(start=start, end=end, pitch=pitch.midi,
                                 velocity=int(rng.integers(65, 100)), program=program))  # fmt: skip
    return Notes.from_records(rows).sorted()


def slakh_track() -> Notes:
    """Slakh2100 Track00001's stems with their programs (metadata.yaml), first 30 s."""
    import yaml

    root = SHARED / "dataset_samples/slakh/babyslakh_16k/Track00001"
    stems = yaml.safe_load((root / "metadata.yaml").read_text())["stems"]
    parts = []
    for stem, info in stems.items():
        if (root / "MIDI" / f"{stem}.mid").is_file():
            notes = read_midi(root / "MIDI" / f"{stem}.mid").notes
            drum = bool(info["is_drum"])
            program = 0 if drum else int(info["program_num"])
            parts.append(notes.replace(program=np.full(len(notes), program),
                                       is_drum=np.full(len(notes), drum)))  # fmt: skip
    notes = concatenate(parts).sorted()
    notes = notes.select(notes.start < SECONDS)
    return notes.replace(end=np.minimum(notes.end, SECONDS))


def held_out_pieces(folder: Path) -> dict[str, Path]:
    """Render the held-out set into ``folder`` (once); {name: wav path}."""
    if not FLUID.is_file():
        sys.exit(f"{FLUID} is missing: apt-get install fluid-soundfont-gm (the held-out timbres)")
    pieces = {f"chamber_{work.split('/')[0]}": (quartet, (work, qpm)) for work, qpm in QUARTETS}
    for seed in (900001, 900002, 900003):
        pieces[f"chamber_ensemble_{seed}"] = (generate_piece, ("ensemble", seed, SECONDS))
    for seed in (900011, 900012, 900013, 900014):
        pieces[f"band_generated_{seed}"] = (generate_piece, ("band", seed, SECONDS))
    if (SHARED / "dataset_samples").is_dir():
        pieces["band_slakh_track00001"] = (slakh_track, ())
    folder.mkdir(parents=True, exist_ok=True)
    for name, (make, arguments) in pieces.items():
        if not (folder / f"{name}.wav").is_file():
            notes = make(*arguments)
            write_midi(notes, folder / f"{name}.mid")
            write_wav(render_notes(notes, 16000, FLUID), 16000, folder / f"{name}.wav")
    return {name: folder / f"{name}.wav" for name in pieces}


def relabeled(reference: Notes, estimate: Notes) -> Notes:
    """The estimate with each of its programs renamed to the reference program (or itself) that
    matches most of its notes (onset, offset and pitch): the best any reassignment of whole
    programs could do. It reads the reference, so it is a ceiling, not a method."""
    programs = estimate.program.copy()
    melodic = ~estimate.is_drum
    for program in np.unique(estimate.program[melodic]):
        mine = melodic & (estimate.program == program)
        candidates = set(reference.program[~reference.is_drum].tolist()) | {int(program)}

        def matches(target, mine=mine):
            ref = reference.select(~reference.is_drum & (reference.program == target))
            est = estimate.select(mine)
            return note_scores(ref, est)["Onset + offset precision"]  # x len(est): matches

        programs[mine] = max(sorted(candidates), key=matches)
    return estimate.replace(program=programs)


def table(label, sets, scores, groups=("piano", "guitar", "drums", "chamber", "band")) -> None:
    for where, pieces in sets.items():
        for group in groups:
            chosen = [n for n in pieces if n.startswith(group)]
            if chosen:
                means = [np.mean([scores[n][key] for n in chosen]) for key in METRICS.values()]
                print(f"| {label:<7} | {where:<8} | {group:<7} | {len(chosen):>2} | "
                      + " | ".join(f"{m:>11.3f}" for m in means) + " |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=str(SHARED / "checkpoints/mt3"),
                        help="a T5X mt3 checkpoint (converted here)")  # fmt: skip
    parser.add_argument("--model", help="a converted model folder (skips the conversion)")
    parser.add_argument("--renders", default=str(Path(tempfile.gettempdir()) / "mt3-heldout"),
                        help="where the held-out renders are made (kept for reuse)")  # fmt: skip
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        model_path = args.model
        if model_path is None:
            model_path = str(Path(scratch) / "mt3")
            convert = [sys.executable, "-m", "mt3", "convert-checkpoint", args.checkpoint]
            subprocess.run([*convert, model_path, "--variant", "mt3"], check=True,
                           stdout=subprocess.DEVNULL)  # fmt: skip
        model = load_model(model_path)
    realdev = SHARED / "realdev"
    sets = {
        "realdev": {p.stem: p for p in sorted((realdev / "audio").glob("*.wav"))},
        "held-out": held_out_pieces(Path(args.renders)),
    }
    references = {
        name: read_notes(realdev / "refs" / f"{name}.mid" if where == "realdev"
                         else path.with_suffix(".mid"))
        for where, pieces in sets.items() for name, path in pieces.items()
    }  # fmt: skip
    audios = {name: load_audio(path) for pieces in sets.values() for name, path in pieces.items()}
    names = list(audios)
    print(f"{len(names)} pieces, {sum(a.size for a in audios.values()) / 16000:.0f} s of audio")
    print(f"| {'context':<7} | {'set':<8} | {'group':<7} | n  | "
          + " | ".join(f"{m:>11}" for m in METRICS) + " |")  # fmt: skip
    print("|" + "|".join("-" * (w + 2) for w in (7, 8, 7, 2, *[11] * len(METRICS))) + "|")
    timings = {}
    for context in CONTEXTS:
        transcriber = Transcriber(model, TranscribeOptions(context=context))
        list(transcriber.transcribe_many([audios[names[0]]]))  # compile
        began = time.perf_counter()
        results = dict(zip(names, transcriber.transcribe_many([audios[n] for n in names])))
        timings[f"all {len(names)} pieces, context {context}"] = time.perf_counter() - began
        scores = {n: score(references[n], results[n].notes) for n in names}
        table(context, sets, scores)
        if context == "none":  # what consistency alone could reach: the best relabeling
            best = {n: score(references[n], relabeled(references[n], results[n].notes))
                    for n in names}  # fmt: skip
            table("ceiling", sets, best, ("chamber", "band"))
        alone = audios[max(names, key=lambda n: audios[n].size)]
        list(transcriber.transcribe_many([alone]))  # compiles its batch size
        began = time.perf_counter()
        list(transcriber.transcribe_many([alone]))
        seconds = time.perf_counter() - began
        timings[f"one {alone.size / 16000:.0f} s file alone, context {context}"] = seconds
    print()
    for what, seconds in timings.items():
        print(f"{what}: {seconds:.1f} s")


if __name__ == "__main__":
    main()

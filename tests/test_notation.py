"""Sheet music: grid, metre, key and positions read back from the MusicXML of generated pieces;
drums, tempo changes, a MIDI's own grid, empty input, clamped tempi, spelling, engraved pages and
the command line."""

from __future__ import annotations

import subprocess
import sys
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from mt3.notation import (
    Key,
    Metre,
    NotationError,
    TempoWarning,
    grid_from_midi,
    midi_has_grid,
    notate,
    uniform_grid,
    write_sheet,
)
from mt3.notation.grid import clamp_bpm
from mt3.notation.score import spell
from mt3.notation.testpieces import generate_piece, read_back
from mt3.notes import Notes, write_midi

PIECES = {
    "piano-4/4-100-C": dict(ensemble="piano", bpm=100, metre=Metre(4), key=Key(0, "major")),
    "quartet-3/4-72-Bb": dict(ensemble="quartet", bpm=72, metre=Metre(3), key=Key(-2, "major")),
    "band-6/8-60-Em": dict(ensemble="band", bpm=60, metre=Metre(2, True), key=Key(1, "minor")),
    "piano-2/4-90-D": dict(ensemble="piano", bpm=90, metre=Metre(2), key=Key(2, "major")),
    "band-4/4-150-Cm-swing": dict(ensemble="band", bpm=150, key=Key(-3, "minor"), swing=True),
}
PART_NAMES = {
    "piano": ["Acoustic Grand Piano"] * 2,  # a grand staff: two staves of one instrument
    "quartet": ["Violin", "Viola", "Cello"],
    "band": ["Alto Sax", "Acoustic Guitar (steel)", "Electric Bass (finger)", "Drums"],
}


@pytest.mark.parametrize("name", PIECES)
def test_generated_pieces_read_back_with_their_tempo_metre_key_and_positions(name):
    piece = generate_piece(7, bars=12, **PIECES[name])
    sheet = notate(piece.notes, title=name)  # from the onsets alone: no tempo is given
    back = read_back(sheet.musicxml, piece)
    assert len(back.tempos) == 1
    written_bpm = back.tempos[0][1] / piece.metre.beat_quarters  # in the metre's beats
    assert written_bpm == pytest.approx(piece.bpm, rel=0.04)
    assert back.signature == piece.metre.signature
    assert back.key == (piece.key.fifths, piece.key.mode)
    assert back.part_names == PART_NAMES[PIECES[name]["ensemble"]]
    assert back.on_grid >= 0.95, back


def test_a_drum_part_reads_back_as_percussion():
    import music21

    piece = generate_piece(3, ensemble="band", bpm=110, bars=4)
    score = music21.converter.parseData(notate(piece.notes).musicxml, format="musicxml")
    drums = [p for p in score.parts if p.partName == "Drums"]
    assert len(drums) == 1
    flat = drums[0].flatten()
    assert flat.getElementsByClass(music21.clef.PercussionClef)
    hits = [n for c in flat.notes for n in (c.notes if c.isChord or hasattr(c, "notes") else [c])]
    unpitched = [n for n in hits if isinstance(n, music21.note.Unpitched)]
    assert unpitched and len(unpitched) == len(hits)
    heads = {(n.displayStep + str(n.displayOctave), n.notehead) for n in unpitched}
    assert ("F4", "normal") in heads  # bass drum in the bottom space
    assert ("C5", "normal") in heads  # snare on the third space
    assert ("G5", "x") in heads  # closed hi-hat: a cross above the staff
    stems = {(n.displayStep + str(n.displayOctave), n.stemDirection) for n in unpitched}
    assert {s for d, s in stems if d == "F4"} == {"down"}  # feet below, hands above
    assert {s for d, s in stems if d in ("C5", "G5")} == {"up"}
    others = [p for p in score.parts if p.partName != "Drums"]
    assert not any(p.flatten().getElementsByClass(music21.note.Unpitched) for p in others)


def test_a_tempo_change_gets_two_tempo_marks():
    piece = generate_piece(5, ensemble="quartet", bpm=80, bars=16, tempo_change=(8, 120))
    back = read_back(notate(piece.notes).musicxml, piece)
    assert [bpm for _, bpm in back.tempos] == pytest.approx([80, 120], rel=0.04)
    assert back.tempos[1][0] == pytest.approx(8 * 4, abs=4)  # at (or a bar from) bar 9
    assert back.on_beat >= 0.9


def test_rubato_keeps_one_tempo_mark_and_the_notes_on_their_beats():
    piece = generate_piece(9, ensemble="piano", bpm=96, bars=16, rubato=0.08)
    back = read_back(notate(piece.notes).musicxml, piece)
    assert len(back.tempos) == 1 and back.tempos[0][1] == pytest.approx(96, rel=0.04)
    assert back.on_grid >= 0.95


def test_a_midi_with_a_tempo_map_uses_its_own_grid(tmp_path):
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(initial_tempo=97.0, resolution=480)
    midi.time_signature_changes.append(pretty_midi.TimeSignature(3, 4, 0.0))
    piano = pretty_midi.Instrument(program=0)
    beat = 60.0 / 97.0
    for i, pitch in enumerate([60, 64, 67, 72, 67, 64] * 4):
        piano.notes.append(pretty_midi.Note(90, pitch, i * beat / 2, (i + 1) * beat / 2))
    midi.instruments.append(piano)
    path = tmp_path / "sequenced.mid"
    midi.write(str(path))
    from mt3.notation import notate_file

    sheet, written = notate_file(path, tmp_path / "sequenced", ["musicxml"])
    assert written == [tmp_path / "sequenced.musicxml"]
    assert sheet.grid.metre == Metre(3)
    assert [round(b, 3) for _, b in sheet.grid.tempos] == [97.0]
    assert midi_has_grid(path, sheet_notes(path))

    # A transcription written at the default 120 bpm: its notes are off that grid.
    rng = np.random.default_rng(0)
    starts = np.cumsum(rng.uniform(0.2, 0.5, 40))
    loose = Notes(starts, starts + 0.2, [60] * 40, [80] * 40, [0] * 40, [False] * 40)
    write_midi(loose, tmp_path / "transcribed.mid")
    assert not midi_has_grid(tmp_path / "transcribed.mid", loose)


def sheet_notes(path):
    from mt3.notes import read_midi

    return read_midi(path).notes


def test_an_empty_transcription_is_a_valid_empty_score(tmp_path):
    import music21

    sheet = notate(Notes.empty())
    score = music21.converter.parseData(sheet.musicxml, format="musicxml")
    assert len(score.parts) == 1 and len(score.flatten().notes) == 0
    assert score.flatten().getElementsByClass(music21.meter.TimeSignature).first().ratioString == (
        "4/4"
    )
    write_sheet(sheet, tmp_path / "empty.musicxml", "musicxml")
    ET.parse(tmp_path / "empty.musicxml")


def test_absurd_tempi_are_clamped_with_a_warning(tmp_path):
    with pytest.warns(TempoWarning, match="outside 30-300"):
        assert clamp_bpm(2000.0) == 300.0
    with pytest.warns(TempoWarning):
        assert uniform_grid(4.0, bpm=5.0).tempos == ((0, 30.0),)
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(initial_tempo=1500.0)
    drum = pretty_midi.Instrument(program=0)
    drum.notes += [pretty_midi.Note(90, 60, i * 0.04, i * 0.04 + 0.03) for i in range(50)]
    midi.instruments.append(drum)
    midi.write(str(tmp_path / "fast.mid"))
    with pytest.warns(TempoWarning, match="fast.mid"):
        grid = grid_from_midi(tmp_path / "fast.mid")
    assert grid.tempos[0][1] == 300.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert clamp_bpm(120.0) == 120.0


@pytest.mark.parametrize(
    "key, pitch, name",
    [(Key(-1, "major"), 70, "B-4"), (Key(2, "major"), 66, "F#4"), (Key(0, "minor"), 68, "G#4"),
     (Key(1, "minor"), 63, "D#4"), (Key(-3, "major"), 68, "A-4"), (Key(0, "major"), 61, "C#4"),
     (Key(-2, "minor"), 66, "F#4"), (Key(6, "major"), 65, "E#4"), (Key(-6, "major"), 59, "C-4")],
)  # fmt: skip
def test_accidentals_follow_the_key(key, pitch, name):
    spelled = spell(pitch, key)
    assert spelled.nameWithOctave == name and spelled.midi == pitch


def test_every_pitch_keeps_its_sound_in_every_key():
    for fifths in range(-6, 7):
        for mode in ("major", "minor"):
            assert [spell(p, Key(fifths, mode)).midi for p in range(21, 109)] == list(
                range(21, 109)
            )


def test_engraved_pages_as_png_pdf_and_svg(tmp_path):
    pytest.importorskip("verovio", reason="score pages need the notation extra (verovio)")
    pytest.importorskip("cairosvg", reason="PNG/PDF pages need the notation extra (cairosvg)")
    from PIL import Image

    from mt3.notation.engrave import musicxml_to_svg_pages

    sheet = notate(generate_piece(1, ensemble="quartet", bars=20).notes, title="Quartet")
    for fmt in ("score-png", "score-pdf", "score-svg"):
        write_sheet(sheet, tmp_path / f"q.{fmt}", fmt)
    image = Image.open(tmp_path / "q.score-png")
    assert image.width > 500 and image.height > image.width  # portrait pages, stacked
    pixels = np.asarray(image.convert("L"))
    assert 0.01 < (pixels < 128).mean() < 0.3  # ink on paper, neither blank nor black
    pdf = (tmp_path / "q.score-pdf").read_bytes()
    pages = len(musicxml_to_svg_pages(sheet.musicxml))
    assert pages >= 2  # 20 bars of a quartet: a multi-page score
    assert pdf.startswith(b"%PDF") and f"/Count {pages}".encode() in pdf
    root = ET.parse(tmp_path / "q.score-svg").getroot()
    assert root.tag.endswith("svg")
    assert 'font-family="Leipzig"' not in (tmp_path / "q.score-svg").read_text()


def test_notation_imports_and_writes_musicxml_without_verovio(tmp_path):
    code = f"""
import sys
sys.modules["verovio"] = None  # as if the notation extra were not installed
from mt3.notation import notate, write_sheet, NotationError
from mt3.notation.testpieces import generate_piece
sheet = notate(generate_piece(0, bars=2).notes)
write_sheet(sheet, r"{tmp_path / "a.musicxml"}", "musicxml")
try:
    write_sheet(sheet, r"{tmp_path / "a.pdf"}", "score-pdf")
except NotationError as error:
    print("ERROR", error)
"""
    root = Path(__file__).resolve().parents[1]  # this checkout's mt3, not an installed one
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "a.musicxml").exists() and not (tmp_path / "a.pdf").exists()
    assert "ERROR" in result.stdout and "pip install 'mt3-jax[notation]'" in result.stdout
    assert result.stdout.count("\n") == 1


def test_notate_command(tmp_path, run_cli):
    piece = generate_piece(2, ensemble="band", bpm=120, bars=4)
    write_midi(piece.notes, tmp_path / "band.mid")
    status, out, err = run_cli(
        "notate", tmp_path / "band.mid", "-o", tmp_path / "out", "--format", "musicxml,svg"
    )
    assert status == 0, err
    assert "4/4, 120 bpm" in out
    assert (tmp_path / "out" / "band.musicxml").exists()
    assert (tmp_path / "out" / "band.score.svg").exists()
    status, _, err = run_cli("notate", tmp_path / "band.mid", "-o", tmp_path / "out")
    assert status == 2 and "exist" in err and len(err.strip().splitlines()) == 1
    status, _, err = run_cli("notate", tmp_path / "missing.mid", "-o", tmp_path / "out")
    assert status == 2 and "missing.mid" in err and len(err.strip().splitlines()) == 1
    status, _, err = run_cli("notate", tmp_path / "band.mid", "--format", "mp3")
    assert status == 2 and "musicxml" in err


def test_transcribe_writes_sheet_music(tmp_path, run_cli, tiny_checkpoint):
    import soundfile

    t = np.arange(16000 * 3) / 16000
    soundfile.write(tmp_path / "take.wav", 0.3 * np.sin(2 * np.pi * 440 * t), 16000)
    status, out, err = run_cli(
        "transcribe", tmp_path / "take.wav", "-o", tmp_path / "out", "--checkpoint",
        tiny_checkpoint, "--format", "midi,musicxml,score-svg",
    )  # fmt: skip
    assert status == 0, err
    assert ET.parse(tmp_path / "out" / "take.musicxml").getroot().tag == "score-partwise"
    assert (tmp_path / "out" / "take.score.svg").exists()
    assert (tmp_path / "out" / "take.mid").exists()


def test_output_paths_of_the_sheet_formats():
    from mt3.outputs import output_paths, parse_formats

    assert parse_formats("png,musicxml,score-pdf") == ["png", "musicxml", "score-pdf"]
    assert [p.name for p in output_paths("out/take", ["png", "score-png", "musicxml"])] == [
        "take.png", "take.score.png", "take.musicxml",
    ]  # fmt: skip
    with pytest.raises(NotationError, match="musicxml"):
        write_sheet(notate(Notes.empty()), "x.mp3", "mp3")


@pytest.mark.parametrize(
    "numerator, denominator, written, bpm",
    [(5, 4, "5/4", 90), (3, 2, "6/4", 90), (12, 8, "12/8", 60), (7, 8, "4/4", 90)],
)
def test_time_signatures_of_a_midi_file(tmp_path, numerator, denominator, written, bpm):
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(initial_tempo=90.0)
    midi.time_signature_changes.append(pretty_midi.TimeSignature(numerator, denominator, 0.0))
    piano = pretty_midi.Instrument(program=0)
    piano.notes = [pretty_midi.Note(80, 60 + k % 5, k / 3, k / 3 + 0.3) for k in range(24)]
    midi.instruments.append(piano)
    midi.write(str(tmp_path / "in.mid"))
    grid = grid_from_midi(tmp_path / "in.mid")
    assert grid.metre.signature == written
    assert [round(b, 2) for _, b in grid.tempos] == [bpm]  # in the metre's beats

"""Metrics: hand-computed cases and MT3's own values (../shared/golden/metrics)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mt3.metrics import CERBERUS4_TRACKS, ScoreInputError, mean_scores, pair_files, score
from mt3.notes import Notes, read_midi, write_midi


def notes(*rows):
    keys = ("start", "end", "pitch", "velocity", "program", "is_drum")
    return Notes.from_records(dict(zip(keys, row)) for row in rows)


def test_hand_computed_scores():
    ref = notes(
        (0.0, 1.0, 60, 100, 0, False),
        (1.0, 2.0, 62, 100, 0, False),
        (0.5, 0.51, 36, 100, 0, True),
    )
    est = notes(
        (0.03, 1.1, 60, 100, 0, False),  # onset within 50 ms, offset within 200 ms
        (1.0, 1.5, 62, 100, 40, False),  # right pitch, wrong program, offset too early
        (0.52, 0.53, 36, 100, 0, True),
        (3.0, 3.5, 70, 100, 0, False),  # false positive
    )
    s = score(ref, est)
    assert s["Onset precision"] == pytest.approx(2 / 3)
    assert s["Onset recall"] == pytest.approx(1.0)
    assert s["Onset + offset precision"] == pytest.approx(1 / 3)
    assert s["Onset + offset recall"] == pytest.approx(1 / 2)
    # full: groups (0, melodic) ref 2 / est 2, (40, melodic) est 1, (0, drum) 1 / 1.
    # precision = (1/2*2 + 0*1 + 1*1) / 4, recall = (1/2*2 + 1*1) / 3
    p, r = 2 / 4, 2 / 3
    assert s["Onset + offset + program precision (full)"] == pytest.approx(p)
    assert s["Onset + offset + program recall (full)"] == pytest.approx(r)
    assert s["Onset + offset + program F1 (full)"] == pytest.approx(2 * p * r / (p + r))
    assert s["Drum onset F1 (full)"] == pytest.approx(1.0)
    # flat maps every melodic program to 0: the program-40 note now counts as a pitch match but
    # its offset is too early, so only the first note matches.
    assert s["Nondrum onset + offset + program precision (flat)"] == pytest.approx(1 / 3)
    assert s["Invalid events"] == 0


def test_frame_scores_by_hand():
    # Reference pitch 60 over frames 0..61 (1 s at 62.5 fps); estimate covers half of it.
    ref = notes((0.0, 1.0, 60, 100, 0, False))
    est = notes((0.0, 0.5, 60, 100, 0, False), (2.0, 2.5, 72, 100, 0, False))
    s = score(ref, est)
    est_frames = int(0.5 * 62.5) + (int(2.5 * 62.5) - int(2.0 * 62.5))
    assert s["Frame Precision"] == pytest.approx(int(0.5 * 62.5) / est_frames)
    assert s["Frame Recall"] == pytest.approx(int(0.5 * 62.5) / int(62.5))


def test_quiet_reference_frames_do_not_count():
    ref = notes((0.0, 1.0, 60, 30, 0, False))  # velocity 30 is not > 30
    s = score(ref, ref)
    assert s["Frame Recall"] == 0.0 and s["Frame Precision"] == 0.0
    assert s["Onset F1"] == 1.0


def test_both_empty_scores_zero_instead_of_crashing():
    s = score(Notes.empty(), Notes.empty())
    assert s["Frame F1"] == 0.0 and s["Onset F1"] == 0.0


def test_mean_scores():
    assert mean_scores([{"a": 1.0, "b": 0.0}, {"a": 0.0}]) == {"a": 0.5, "b": 0.0}


def test_pair_files_errors(tmp_path):
    (tmp_path / "ref").mkdir()
    (tmp_path / "est").mkdir()
    with pytest.raises(ScoreInputError, match="no .mid"):
        pair_files(tmp_path / "ref", tmp_path / "est")
    write_midi(notes((0, 1, 60, 100, 0, False)), tmp_path / "ref" / "a.mid")
    with pytest.raises(ScoreInputError, match="no file for 'a'"):
        pair_files(tmp_path / "ref", tmp_path / "est")
    with pytest.raises(ScoreInputError, match="two files or two folders"):
        pair_files(tmp_path / "ref", tmp_path / "ref" / "a.mid")
    with pytest.raises(ScoreInputError, match="no such file"):
        pair_files(tmp_path / "nope.mid", tmp_path / "ref" / "a.mid")


def metric_cases(golden_dir):
    folder = golden_dir("metrics")
    return folder, json.loads((folder / "cases.json").read_text())


@pytest.mark.parametrize("index", range(12))
def test_score_matches_mt3(golden_dir, index, run_cli):
    folder, cases = metric_cases(golden_dir)
    case = cases[index]
    golden = json.loads((folder / case["golden"]).read_text())
    status, out, err = run_cli("score", folder / case["ref"], folder / case["est"], "--json")
    assert status == 0, err
    ours = json.loads(out)["metrics"]
    for name, value in golden.items():
        if name in ("Invalid events", "Dropped events"):
            continue
        assert ours[name] == pytest.approx(value, abs=1e-6), name


def test_cerberus4_stem_scores_match_mt3(golden_dir):
    folder = golden_dir("metrics")
    golden = json.loads((folder / "p20_cerberus4_stems.json").read_text())
    ref = read_midi(folder / "p20_cerberus4_stems.ref.mid").notes
    est = read_midi(folder / "p20_cerberus4_stems.est.mid", sustain=False).notes
    ours = score(ref, est, track_specs=CERBERUS4_TRACKS)
    assert set(golden) == set(ours)
    for name, value in golden.items():
        assert ours[name] == pytest.approx(value, abs=1e-6), name


def test_metric_names_are_mt3s(golden_dir):
    folder = golden_dir("metrics")
    names = json.loads((folder / "metric_names.json").read_text())
    ours = score(notes((0, 1, 60, 100, 0, False)), Notes.empty(), track_specs=CERBERUS4_TRACKS)
    assert set(ours) == set(names)
    assert all(isinstance(v, float) for v in ours.values())
    assert np.isfinite(list(ours.values())).all()

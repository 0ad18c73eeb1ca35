"""Vocabulary layout (docs/mt3.md §2.2-§2.4): every number is from docs/mt3.md's tables."""

import numpy as np
import pytest

from mt3.vocab import VocabConfig, VocabError, map_program, velocity_to_bin, vocabulary


def test_mt3_layout():
    vocab = vocabulary("mt3")
    assert vocab.num_classes == 1388
    assert vocab.vocab_size == 1491
    assert vocab.num_embeddings == 1536
    assert vocab.id_range("shift") == (3, 1003)
    assert vocab.id_range("pitch") == (1004, 1131)
    assert vocab.id_range("velocity") == (1132, 1133)
    assert vocab.tie_id == 1134
    assert vocab.id_range("program") == (1135, 1262)
    assert vocab.id_range("drum") == (1263, 1390)


def test_ismir2021_layout():
    vocab = vocabulary("ismir2021")
    assert vocab.num_classes == 1514
    assert vocab.vocab_size == 1617
    assert vocab.num_embeddings == 1664
    assert vocab.id_range("velocity") == (1132, 1259)
    assert vocab.tie_id == 1260
    assert vocab.id_range("program") == (1261, 1388)
    assert vocab.id_range("drum") == (1389, 1516)
    assert vocab.event_id("velocity", 80) == 1212
    assert vocab.event_id("drum", 36) == 1425


def test_decode_id_round_trip_and_invalid_ids():
    vocab = vocabulary("mt3")
    for event_type in ("shift", "pitch", "velocity", "tie", "program", "drum"):
        first, last = vocab.id_range(event_type)
        for token in (first, last):
            kind, value = vocab.decode_id(token)
            assert kind == event_type
            assert vocab.event_id(kind, value) == token
    for token in (0, 1, 2, 1391, 1490, 1535, -2):
        assert vocab.decode_id(token) is None
    types = vocab.event_types_of(np.array([0, 3, 1134, 1391]))
    assert types.tolist() == [-1, 0, 3, -1]


def test_velocity_bins():
    assert velocity_to_bin(0, 1) == 0
    assert [velocity_to_bin(v, 1) for v in (1, 64, 127)] == [1, 1, 1]
    assert [velocity_to_bin(v, 127) for v in (1, 80, 127)] == [1, 80, 127]
    assert velocity_to_bin(64, 4) == 3  # ceil(4 * 64 / 127) = ceil(2.016)
    mt3, ismir = vocabulary("mt3"), vocabulary("ismir2021")
    assert mt3.bin_to_velocity(1) == 127
    assert ismir.bin_to_velocity(80) == 80
    assert mt3.bin_to_velocity(0) == 0


def test_program_granularities():
    assert map_program(43, "flat") == 0
    assert map_program(43, "midi_class") == 40
    assert map_program(43, "full") == 43
    assert map_program(np.array([7, 8, 127]), "midi_class").tolist() == [0, 8, 120]


def test_bad_configs():
    with pytest.raises(VocabError, match="num_velocity_bins"):
        VocabConfig(num_velocity_bins=0)
    with pytest.raises(VocabError, match="program_granularity"):
        VocabConfig(program_granularity="coarse")
    with pytest.raises(VocabError, match="unknown vocabulary"):
        vocabulary("mt4")
    with pytest.raises(VocabError, match="outside"):
        vocabulary("mt3").event_id("pitch", 128)

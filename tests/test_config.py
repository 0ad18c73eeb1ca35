"""The configuration tree, the variants, the error base class and the output registry."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import pkgutil

import pytest

import mt3
from mt3.config import (
    VARIANTS,
    ConfigError,
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    get_variant,
    load_config,
)
from mt3.errors import Mt3Error


def test_gin_reaches_every_part_of_the_tree():
    config = load_config(
        [],
        [
            "TrainConfig.variant = 'tiny'",
            "ModelConfig.dropout_rate = 0.0",
            "DataConfig.temperature = 3.0",
            "DataConfig.min_submix_stems = 2",
            "DataConfig.submix = False",
            "TrainConfig.steps = 7",
        ],
    )
    assert config.model == dataclasses.replace(VARIANTS["tiny"], dropout_rate=0.0)
    assert config.data == DataConfig(temperature=3.0, min_submix_stems=2, submix=False)
    assert config.train == TrainConfig(variant="tiny", steps=7)


def test_defaults_are_the_dataclasses():
    config = load_config()
    assert config == RunConfig() and config.model == VARIANTS[TrainConfig.variant]
    assert DataConfig().target_length_for(VARIANTS["mt3"]) == 1024
    assert DataConfig(target_length=128).target_length_for(VARIANTS["mt3"]) == 128


def test_resolved_config_round_trips_through_json_and_gin(tmp_path):
    config = load_config([], ["TrainConfig.variant = 'ismir2021'", "DataConfig.mixture = 'a,b'"])
    assert config.model.segment_frames == 512 and config.model.vocab == "ismir2021"
    assert RunConfig.from_json(config.to_json()) == config
    path = tmp_path / "config.gin"
    path.write_text(config.to_gin())
    assert load_config([path]) == config


def test_a_run_config_written_before_the_tree_still_loads():
    flat = {"model": "tiny", "data_root": "d", "mixture": "synth-piano", "steps": 3,
            "batch_size": 2, "target_length": 128, "dropout_rate": 0.0,
            "time_init": True}  # fmt: skip
    config = RunConfig.from_json(json.dumps(flat))
    assert config.model == dataclasses.replace(VARIANTS["tiny"], dropout_rate=0.0)
    assert config.data == DataConfig(data_root="d", mixture="synth-piano", target_length=128)
    assert config.train == TrainConfig(variant="tiny", steps=3, batch_size=2, time_init=True)


@pytest.mark.parametrize(
    "binding, message",
    [
        ("TrainConfig.model = 'tiny'", "TrainConfig.model is now TrainConfig.variant"),
        ("TrainConfig.mixture = 'synth'", "TrainConfig.mixture is now DataConfig.mixture"),
        ("TrainConfig.dropout_rate = 0.0", "is now ModelConfig.dropout_rate"),
        ("TrainConfig.variant = 'huge'", "unknown variant 'huge'"),
        ("DataConfig.temperature = 0", "temperature must be positive"),
        ("ModelConfig.emb_dim = 3", "emb_dim must be even"),
    ],
)
def test_bad_bindings_are_config_errors(binding, message):
    with pytest.raises(ConfigError, match=message):
        load_config([], [binding])


def test_variants_state_their_shapes_once():
    assert set(VARIANTS) == {"mt3", "ismir2021", "base", "tiny"}
    assert [VARIANTS[n].segment_frames for n in ("mt3", "ismir2021")] == [256, 512]
    assert VARIANTS["mt3"].num_params() == 45_896_704
    assert VARIANTS["ismir2021"].num_params() == 46_027_776
    assert get_variant("tiny", mlp_dim=64).mlp_dim == 64
    with pytest.raises(ConfigError, match="unknown variant"):
        get_variant("huge")
    assert isinstance(VARIANTS["mt3"], ModelConfig)


@pytest.mark.parametrize("command", ["tokens", "features", "transcribe", "convert-checkpoint"])
def test_every_command_takes_variant_and_its_old_name(command, run_cli):
    from mt3.cli.main import build_parser

    parser = build_parser()
    actions = parser._subparsers._group_actions[0].choices[command]._actions
    variant = next(a for a in actions if a.dest == "variant")
    old = {"tokens": "--vocab", "features": "--config", "transcribe": "--model-config",
           "convert-checkpoint": "--model-config"}[command]  # fmt: skip
    assert "--variant" in variant.option_strings and old in variant.option_strings


def test_every_expected_failure_derives_from_mt3_error():
    errors = []
    for info in pkgutil.walk_packages(mt3.__path__, "mt3."):
        if info.name.startswith("mt3.cli") or info.name == "mt3.__main__":
            continue
        module = importlib.import_module(info.name)
        for name, value in inspect.getmembers(module, inspect.isclass):
            if name.endswith("Error") and value.__module__ == info.name:
                errors.append(value)
    assert len(errors) >= 17
    assert [e.__name__ for e in errors if not issubclass(e, Mt3Error)] == []


def test_output_formats_come_from_one_registry(run_cli):
    from mt3.errors import UsageError
    from mt3.outputs import WRITERS, formats_help, output_paths, parse_formats

    names = ["midi", "json", "png", "wav", "musicxml", "score-pdf", "score-svg", "score-png"]
    assert list(WRITERS) == names
    assert parse_formats("midi, wav") == ["midi", "wav"]
    assert parse_formats("", allow_empty=True) == []
    assert [p.name for p in output_paths("out/take", ["midi", "json", "score-pdf"])] == [
        "take.mid", "take.json", "take.score.pdf",
    ]  # fmt: skip
    with pytest.raises(UsageError, match="--format takes midi, json, png, wav, musicxml, "):
        parse_formats("midi,mp4")
    for command in ("transcribe", "evaluate"):
        with pytest.raises(SystemExit):
            run_cli(command, "--help")
    # The help of both commands lists every format (evaluate's used to miss wav).
    from mt3.cli.main import build_parser

    subcommands = build_parser()._subparsers._group_actions[0].choices
    for command in ("transcribe", "evaluate"):
        help_text = next(a.help for a in subcommands[command]._actions if a.dest == "format")
        assert formats_help() in help_text

"""Fine-tuning: TrainConfig.trainable ('all' or 'decoder': a frozen encoder) on the tiny network,
started from a saved model as a fine-tune of the released one is."""

from __future__ import annotations

import numpy as np
import pytest
from flax import nnx, traverse_util

from mt3.config import ConfigError, DataConfig, RunConfig, TrainConfig, get_variant
from mt3.data.prepare import prepare
from mt3.train.train import TrainingError, build, train


@pytest.fixture(scope="module")
def start(tmp_path_factory):
    """(data root with a prepared synth-piano, a saved tiny model to start from)."""
    from mt3.model.store import save_model
    from mt3.model.t5 import Transformer

    root = tmp_path_factory.mktemp("finetune")
    prepare("synth-piano", None, root / "data" / "synth-piano", workers=1, progress=False,
            count=10, seconds=4.0)  # fmt: skip
    save_model(Transformer(get_variant("tiny"), rngs=nnx.Rngs(3)), root / "base")
    return root / "data", root / "base"


def config(start, **overrides):
    data_root, base = start
    train_config = dict(variant="tiny", batch_size=2, steps=2, log_every_steps=1,
                        learning_rate=1e-2, init_from=str(base))  # fmt: skip
    data = DataConfig(data_root=str(data_root), mixture="synth-piano", target_length=128)
    return RunConfig(get_variant("tiny"), data, TrainConfig(**{**train_config, **overrides}))


def params(path) -> dict:
    from mt3.model.store import load_model

    flat = traverse_util.flatten_dict(nnx.to_pure_dict(nnx.state(load_model(path), nnx.Param)))
    return {"/".join(map(str, k)): np.asarray(v) for k, v in flat.items()}


@pytest.mark.parametrize("trainable", ["all", "decoder"])
def test_trainable_parameters_change_and_frozen_ones_do_not(start, tmp_path, trainable):
    before = params(start[1])
    train(config(start, trainable=trainable, checkpoint_every_steps=2), tmp_path / "run")
    after = params(tmp_path / "run")
    assert before.keys() == after.keys()
    changed = {name for name in before if not np.array_equal(before[name], after[name])}
    decoder = {name for name in before if name.startswith("decoder/")}
    encoder = set(before) - decoder
    assert decoder <= changed  # every decoder parameter (embeddings, norms, logits) moves
    if trainable == "decoder":
        assert not changed & encoder
        # The run resumes only with its own trainable parameters (the optimizer state differs).
        with pytest.raises(TrainingError, match="trainable 'decoder' \\(now 'all'\\)"):
            train(config(start, trainable="all", steps=4), tmp_path / "run")
    else:
        assert encoder <= changed


def test_a_frozen_encoder_has_no_optimizer_state(start):
    def optimizer_paths(trainable):
        _, optimizer = build(config(start, trainable=trainable))
        flat = traverse_util.flatten_dict(nnx.to_pure_dict(nnx.state(optimizer)))
        return {"/".join(map(str, k)) for k in flat}

    everything, decoder_only = optimizer_paths("all"), optimizer_paths("decoder")
    assert any("/encoder/" in path for path in everything)
    assert decoder_only and not any("/encoder/" in path for path in decoder_only)
    assert len(decoder_only) < len(everything)


def test_bad_trainable_is_one_line(tmp_path, run_cli):
    with pytest.raises(ConfigError, match="trainable must be all or decoder, got 'encoder'"):
        TrainConfig(trainable="encoder")
    status, _, err = run_cli("train", "--workdir", tmp_path / "w", "--gin_param",
                             "TrainConfig.trainable = 'lora'")  # fmt: skip
    assert status == 2 and "trainable must be" in err and len(err.strip().splitlines()) == 1

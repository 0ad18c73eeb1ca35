"""The network: sizes, T5X import against the original code's outputs, a training step."""

from __future__ import annotations

import hashlib
import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from mt3.config import ConfigError, get_variant
from mt3.model.convert import convert_checkpoint, read_t5x_params
from mt3.model.decoding import beam_search, greedy_decode
from mt3.model.loss import sequence_loss
from mt3.model.store import CheckpointError, load_model, save_model
from mt3.model.t5 import Transformer, count_params, sinusoid_table


@pytest.mark.parametrize(
    "name, expected", [("mt3", 45_896_704), ("ismir2021", 46_027_776), ("tiny", None)]
)
def test_parameter_counts(name, expected):
    config = get_variant(name)
    model = nnx.eval_shape(lambda: Transformer(config, rngs=nnx.Rngs(0)))
    assert count_params(model) == config.num_params()
    if expected is not None:
        assert config.num_params() == expected


def test_parameters_carry_logical_axes():
    model = Transformer(get_variant("tiny"), rngs=nnx.Rngs(0))
    query = model.encoder.layers_0.attention.query.kernel
    assert query.get_metadata()["out_sharding"] == ("embed", "joined_kv")
    assert model.decoder.token_embedder.embedding.get_metadata()["out_sharding"] == (
        "vocab",
        "embed",
    )


def test_shapes_only_traces_the_same_tree():
    """The abstract network the model store builds (zeros, no keys drawn) has the structure,
    shapes, dtypes and metadata of a normally initialised one."""
    from mt3.model.t5 import shapes_only

    config = get_variant("tiny")
    normal = nnx.eval_shape(lambda: Transformer(config, rngs=nnx.Rngs(0)))
    with shapes_only():
        fast = nnx.eval_shape(lambda: Transformer(config, rngs=nnx.Rngs(0)))
    assert nnx.graphdef(normal) == nnx.graphdef(fast)
    a, b = nnx.state(normal), nnx.state(fast)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert (x.shape, x.dtype) == (y.shape, y.dtype)
    params = nnx.state(fast, nnx.Param)
    assert all(v.get_metadata().get("out_sharding") for v in jax.tree.leaves(
        params, is_leaf=lambda x: isinstance(x, nnx.Variable)))  # fmt: skip
    real = Transformer(config, rngs=nnx.Rngs(0))  # outside the context: random values again
    assert float(jnp.abs(real.decoder.logits_dense.kernel[...]).sum()) > 0


def test_sinusoid_layout():
    table = sinusoid_table(2048, 512)
    assert table.dtype == np.float32 and table.shape == (2048, 512)
    frequency = np.exp(-np.log(1e4) * 3 / 255)  # denominator d/2 - 1
    np.testing.assert_allclose(table[7, 3], np.sin(7 * frequency), rtol=1e-6)
    np.testing.assert_allclose(table[7, 256 + 3], np.cos(7 * frequency), rtol=1e-6)


def test_bad_config():
    with pytest.raises(ConfigError, match="unknown variant"):
        get_variant("huge")
    with pytest.raises(ConfigError, match="vocab_size"):
        get_variant("mt3", vocab_size=1000)


# ----------------------------------------------------------------------------------------------
# T5X checkpoint written by the original code


@pytest.fixture(scope="module")
def golden_model(golden_dir, tmp_path_factory):
    folder = golden_dir("model")
    out = tmp_path_factory.mktemp("converted") / "mt3-random"
    config = convert_checkpoint(folder / "t5x_mt3_random", out, "mt3")
    assert (config.num_encoder_layers, config.num_decoder_layers) == (2, 2)
    return folder, load_model(out)


def test_converted_parameters_are_bit_exact(golden_model):
    folder, model = golden_model
    manifest = json.loads((folder / "params_manifest.json").read_text())["parameters"]
    state = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    for name, entry in manifest.items():
        node = state
        for key in name.split("/"):
            node = node[key]
        array = np.asarray(node, dtype="<f4")
        assert list(array.shape) == entry["shape"], name
        assert hashlib.sha256(array.tobytes()).hexdigest() == entry["sha256_le_f32_C"], name


@pytest.mark.parametrize("clip", ["piano", "multi"])
def test_encoder_and_teacher_forced_logits_match_mt3(golden_model, clip):
    folder, model = golden_model
    inputs = np.load(folder / f"{clip}.inputs.npz")["inputs"]
    encoded = np.load(folder / f"{clip}.encoded.npz")["encoded"]
    golden = np.load(folder / f"{clip}.logits.npz")
    ours = model.encode(jnp.asarray(inputs[:1]))
    assert np.abs(np.asarray(ours[0]) - encoded).max() < 1e-4
    count = inputs.shape[0]
    logits = model(
        jnp.asarray(inputs),
        jnp.tile(golden["decoder_input_tokens"][None], (count, 1)),
        jnp.tile(golden["decoder_target_tokens"][None], (count, 1)),
    )
    assert np.abs(np.asarray(logits) - golden["logits"]).max() < 1e-4


@pytest.mark.parametrize("clip", ["piano", "multi"])
def test_cached_greedy_and_beam_one_tokens_match_mt3(golden_model, clip):
    folder, model = golden_model
    inputs = jnp.asarray(np.load(folder / f"{clip}.inputs.npz")["inputs"])
    golden = json.loads((folder / f"{clip}.greedy.json").read_text())["segments"]
    graphdef, state = nnx.split(model)

    @jax.jit
    def run(state, features):
        network = nnx.merge(graphdef, state)
        cache = network.decoder.init_cache(network.encode(features), 64, 32)
        step = network.decoder.decode_step
        # 32-position phases: the 64 golden steps cross a phase (cache chunk) boundary.
        greedy = greedy_decode(step, cache, features.shape[0], 64, phase_length=32)
        beam, _ = beam_search(step, cache, features.shape[0], 64, num_beams=1, phase_length=32)
        return greedy, beam

    greedy, beam = run(state, inputs)
    for index, segment in enumerate(golden):
        assert np.asarray(greedy[index]).tolist() == segment["tokens"]
        assert (
            np.asarray(beam[index]).tolist() == segment["t5x_beam_search_num_decodes_1"]["tokens"]
        )


def test_converter_names_missing_arrays(golden_dir, tmp_path):
    folder = golden_dir("model")
    broken = tmp_path / "t5x"
    shutil.copytree(folder / "t5x_mt3_random", broken)
    shutil.rmtree(broken / "target.decoder.logits_dense.kernel")
    with pytest.raises(CheckpointError, match="logits_dense.kernel.*missing"):
        read_t5x_params(broken)
    with pytest.raises(CheckpointError, match="no T5X 'checkpoint' file"):
        read_t5x_params(tmp_path)
    with pytest.raises(CheckpointError, match="already exists"):
        convert_checkpoint(folder / "t5x_mt3_random", tmp_path, "mt3")
    params = read_t5x_params(folder / "t5x_mt3_random")
    params["decoder/extra/kernel"] = np.zeros((2, 2), np.float32)
    del params["encoder/encoder_norm/scale"]
    from mt3.model.convert import t5x_to_model

    config = get_variant("mt3", num_encoder_layers=2, num_decoder_layers=2)
    with pytest.raises(CheckpointError, match="missing: encoder/encoder_norm/scale.*unexpected"):
        t5x_to_model(params, config)


def test_store_round_trip_and_errors(tmp_path):
    model = Transformer(get_variant("tiny"), rngs=nnx.Rngs(3))
    save_model(model, tmp_path / "tiny")
    restored = load_model(tmp_path / "tiny")
    assert restored.config == model.config
    a = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    b = nnx.to_pure_dict(nnx.state(restored, nnx.Param))
    jax.tree.map(np.testing.assert_array_equal, a, b)
    with pytest.raises(CheckpointError, match="not an mt3 checkpoint"):
        load_model(tmp_path)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# ----------------------------------------------------------------------------------------------
# Training step


def mt3_adafactor():
    """MT3's optimizer (docs/mt3.md §6.1): decay 0.8, no momentum, update clipping 1, parameter
    scale."""
    return optax.adafactor(
        learning_rate=1e-3, decay_rate=0.8, clipping_threshold=1.0,
        multiply_by_parameter_scale=True, momentum=None, min_dim_size_to_factor=128,
    )  # fmt: skip


def train_steps(name: str, steps: int, target_length: int):
    config = get_variant(name)
    model = Transformer(config, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, mt3_adafactor(), wrt=nnx.Param)
    rng = np.random.default_rng(0)
    features = jnp.asarray(rng.normal(size=(2, config.segment_frames, 512)), jnp.float32)
    targets = jnp.asarray(rng.integers(3, 1391, size=(2, target_length)), jnp.int32)
    targets = targets.at[:, -3:].set(0).at[:, -4].set(1)  # EOS then padding
    inputs = jnp.pad(targets[:, :-1], ((0, 0), (1, 0)))

    @nnx.jit
    def step(model, optimizer, features, inputs, targets):
        def loss_fn(model):
            logits = model(features, inputs, targets, deterministic=False)
            return sequence_loss(logits, targets)["loss"]

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    losses = [float(step(model, optimizer, features, inputs, targets)) for _ in range(steps)]
    return model, losses


def test_tiny_trains_and_decodes():
    model, losses = train_steps("tiny", 8, 24)
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    features = jnp.zeros((1, 256, 512), jnp.float32)
    cache = model.decoder.init_cache(model.encode(features), 16, 8)
    tokens = greedy_decode(model.decoder.decode_step, cache, 1, 16, phase_length=8)
    assert tokens.shape == (1, 16)


def test_mt3_takes_a_training_step_and_decodes():
    model, losses = train_steps("mt3", 2, 16)
    assert all(np.isfinite(losses)) and losses[1] < losses[0]
    features = jnp.zeros((2, 256, 512), jnp.float32)
    cache = model.decoder.init_cache(model.encode(features), 8, 4)
    tokens, _ = beam_search(model.decoder.decode_step, cache, 2, 8, num_beams=1, phase_length=4)
    assert tokens.shape == (2, 8) and int(tokens.min()) >= 0


def test_loss_is_summed_cross_entropy_plus_z_loss():
    logits = jnp.log(jnp.array([[[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]]]))
    targets = jnp.array([[1, 0]])  # the second position is PAD and does not count
    out = sequence_loss(logits, targets)
    assert float(out["loss"]) == pytest.approx(-np.log(0.25) + 0.0, abs=1e-6)
    assert float(out["tokens"]) == 1


def test_a_checkpoint_named_by_a_relative_path_converts(golden_dir, tmp_path, monkeypatch):
    """`mt3 convert-checkpoint ../shared/...` (and `mt3 download --from ../shared/...`): the zarr
    arrays are opened by absolute path (tensorstore refuses relative ones)."""
    import os

    folder = golden_dir("model")
    monkeypatch.chdir(tmp_path)
    relative = os.path.relpath(folder / "t5x_mt3_random", tmp_path)
    assert not os.path.isabs(relative)
    params = read_t5x_params(relative)
    assert "decoder/layers_0/encoder_decoder_attention/key/kernel" in params

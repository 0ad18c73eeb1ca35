"""MT3's network: a T5.1.1-style encoder-decoder on log-mel frames (docs/mt3.md §5), in Flax NNX.

- Encoder: a bias-free projection of the 512 mel bins, plus fixed sinusoidal positions, then
  pre-norm blocks of self-attention and a gated-GELU MLP, and a final RMSNorm.
- Decoder: token embedding plus the same sinusoids, pre-norm blocks of causal self-attention,
  cross-attention to the encoder and the MLP, a final RMSNorm and an untied logits layer.
- T5 details kept exactly: RMSNorm (eps 1e-6) with a scale and no bias; no biases anywhere; no
  1/sqrt(head_dim) in the attention logits (it is folded into the query initialiser); masked logits
  get a -1e10 bias; GELU is the tanh approximation; sinusoid frequencies use d/2 - 1 in the
  denominator with the sin and cos halves concatenated.

Module and parameter names follow the T5X checkpoints one to one
(``encoder/layers_3/attention/query/kernel``), and kernels keep T5X's 2-D ``[in, out]`` layout
(heads joined), so importing Magenta's checkpoints is a rename. Every parameter carries its logical
axis names (``embed``, ``joined_kv``, ``mlp``, ``vocab``) for sharding.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mt3.config import ModelConfig

NEG_BIAS = -1e10
RMS_EPSILON = 1e-6
MAX_TIMESCALE = 1e4


@functools.cache
def sinusoid_table(max_length: int, features: int) -> np.ndarray:
    """float32 [max_length, features]: sin(pos * f_i) then cos(pos * f_i),
    f_i = exp(-ln(1e4) * i / (features/2 - 1)), computed in float64."""
    half = features // 2
    frequencies = np.exp(np.arange(half) * -np.log(MAX_TIMESCALE) / (half - 1))
    angles = np.arange(max_length)[:, None] * frequencies[None, :]
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1).astype(np.float32)


def sinusoid_rows(positions: np.ndarray, features: int) -> np.ndarray:
    """``sinusoid_table`` evaluated at fractional positions: float32 [len(positions), features]."""
    half = features // 2
    frequencies = np.exp(np.arange(half) * -np.log(MAX_TIMESCALE) / (half - 1))
    angles = np.asarray(positions, np.float64)[:, None] * frequencies[None, :]
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1).astype(np.float32)


def init_time_rows(model: Transformer) -> None:
    """Start the decoder's time-shift embeddings and logit columns as the encoder's position
    sinusoids of the frames they name (shift k = k * 10 ms = frame 1.25 k), instead of noise.

    An initialisation only (the network and checkpoint format are MT3's): neighbouring times start
    similar, and a shift's embedding starts where its frame's position code is, so a small model
    learns to place notes in time in far fewer steps (the demo recipe uses it; MT3 did not).
    """
    from mt3.audio import FRAMES_PER_SECOND
    from mt3.vocab import STEPS_PER_SECOND, vocabulary

    config = model.config
    first, last = vocabulary(config.vocab).id_range("shift")
    frames = np.arange(last - first + 1) * (FRAMES_PER_SECOND / STEPS_PER_SECOND)
    rows = jnp.asarray(sinusoid_rows(frames, config.emb_dim) * np.sqrt(2.0))  # unit RMS
    embedding = model.decoder.token_embedder.embedding
    embedding.set_value(embedding.get_value().at[first : last + 1].set(rows))
    kernel = model.decoder.logits_dense.kernel
    columns = rows.T / np.sqrt(config.emb_dim)  # the scale of the fan-in initialiser
    kernel.set_value(kernel.get_value().at[:, first : last + 1].set(columns))


_SHAPES_ONLY = contextvars.ContextVar("shapes_only", default=False)


@contextlib.contextmanager
def shapes_only():
    """Inside, parameters are built as zeros without drawing random keys: for tracing a
    network's structure (``nnx.eval_shape``) whose values come from a checkpoint. The tree is the
    same; tracing it takes a quarter of the time (no key derivations and initialisers)."""
    token = _SHAPES_ONLY.set(True)
    try:
        yield
    finally:
        _SHAPES_ONLY.reset(token)


def _param(rngs: nnx.Rngs, initializer, shape, axes) -> nnx.Param:
    """A float32 parameter annotated with logical axes (sharded later, by the trainer's mesh)."""
    if _SHAPES_ONLY.get():
        value = jnp.zeros(shape, jnp.float32)
    else:
        value = initializer(rngs.params(), shape, jnp.float32)
    return nnx.Param(value, out_sharding=axes, eager_sharding=False)


_kernel_init = nnx.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")


class Dense(nnx.Module):
    """Bias-free ``x @ kernel`` with a 2-D ``[in, out]`` kernel."""

    def __init__(self, in_dim, out_dim, axes, rngs, *, init=_kernel_init, precision="highest"):
        self.kernel = _param(rngs, init, (in_dim, out_dim), axes)
        self.precision = precision

    def __call__(self, x: jax.Array) -> jax.Array:
        return jnp.matmul(x, self.kernel[...], precision=self.precision)


class RMSNorm(nnx.Module):
    """T5's LayerNorm: x / rms(x) * scale, computed in float32."""

    def __init__(self, dim: int, rngs: nnx.Rngs):
        self.scale = _param(rngs, nnx.initializers.ones, (dim,), ("embed",))

    def __call__(self, x: jax.Array) -> jax.Array:
        variance = jnp.mean(jnp.square(x), axis=-1, keepdims=True)
        return x * jax.lax.rsqrt(variance + RMS_EPSILON) * self.scale[...]


class Attention(nnx.Module):
    """Multi-head dot-product attention with joined-head kernels (T5X layout)."""

    def __init__(self, config: ModelConfig, rngs: nnx.Rngs):
        d, j = config.emb_dim, config.joined_dim
        fan_in = nnx.initializers.variance_scaling(1.0, "fan_in", "normal")
        depth_scaling = config.head_dim**0.5

        def query_init(key, shape, dtype):  # the 1/sqrt(d_head) of the logits lives here
            return fan_in(key, shape, dtype) / depth_scaling

        precision = config.matmul_precision
        self.query = Dense(d, j, ("embed", "joined_kv"), rngs, init=query_init, precision=precision)
        self.key = Dense(d, j, ("embed", "joined_kv"), rngs, init=fan_in, precision=precision)
        self.value = Dense(d, j, ("embed", "joined_kv"), rngs, init=fan_in, precision=precision)
        self.out = Dense(j, d, ("joined_kv", "embed"), rngs, init=fan_in, precision=precision)
        self.dropout = nnx.Dropout(config.dropout_rate, broadcast_dims=(-2,), rngs=rngs)
        self.num_heads, self.head_dim, self.precision = config.num_heads, config.head_dim, precision

    def heads(self, x: jax.Array) -> jax.Array:
        """[B, T, H * D] -> [B, H, T, D] (heads major, as T5X joins them)."""
        x = x.reshape(*x.shape[:-1], self.num_heads, self.head_dim)
        return jnp.swapaxes(x, -3, -2)

    def project_kv(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Keys and values [B, H, K, D] of a key/value input [B, K, d]."""
        return self.heads(self.key(x)), self.heads(self.value(x))

    def attend(self, x, keys, values, bias, deterministic=True) -> jax.Array:
        """Queries from x [B, Q, d] over keys/values [B, H, K, D]; bias [B|1, 1|H, Q, K].

        ``keys`` and ``values`` may also be tuples of chunks along K, attended as their
        concatenation without building it (the cached decoder's self-attention cache).
        Head-major layouts keep each head's rows contiguous, so the per-step attention of the
        cached decoder reads its caches at memory speed.
        """
        query = self.heads(self.query(x))
        key_chunks = keys if isinstance(keys, tuple) else (keys,)
        value_chunks = values if isinstance(values, tuple) else (values,)
        logits = jnp.concatenate(
            [jnp.einsum("bhqd,bhkd->bhqk", query, k, precision=self.precision) for k in key_chunks],
            axis=-1,
        )
        if bias is not None:
            logits = logits + bias
        weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
        weights = self.dropout(weights, deterministic=deterministic)
        mixed, start = 0.0, 0
        for chunk in value_chunks:
            part = weights[..., start : start + chunk.shape[-2]]
            mixed = mixed + jnp.einsum("bhqk,bhkd->bhqd", part, chunk, precision=self.precision)
            start += chunk.shape[-2]
        mixed = jnp.swapaxes(mixed, -3, -2)
        return self.out(mixed.reshape(*mixed.shape[:-2], -1))

    def __call__(self, x, kv, bias, deterministic=True) -> jax.Array:
        keys, values = self.project_kv(kv)
        return self.attend(x, keys, values, bias, deterministic)


class Mlp(nnx.Module):
    """Gated GELU: wo(gelu(x wi_0) * (x wi_1)), dropout after the product."""

    def __init__(self, config: ModelConfig, rngs: nnx.Rngs):
        d, f, p = config.emb_dim, config.mlp_dim, config.matmul_precision
        self.wi_0 = Dense(d, f, ("embed", "mlp"), rngs, precision=p)
        self.wi_1 = Dense(d, f, ("embed", "mlp"), rngs, precision=p)
        self.wo = Dense(f, d, ("mlp", "embed"), rngs, precision=p)
        self.dropout = nnx.Dropout(config.dropout_rate, broadcast_dims=(-2,), rngs=rngs)

    def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
        hidden = jax.nn.gelu(self.wi_0(x), approximate=True) * self.wi_1(x)
        return self.wo(self.dropout(hidden, deterministic=deterministic))


class EncoderLayer(nnx.Module):
    def __init__(self, config: ModelConfig, rngs: nnx.Rngs):
        self.pre_attention_layer_norm = RMSNorm(config.emb_dim, rngs)
        self.attention = Attention(config, rngs)
        self.pre_mlp_layer_norm = RMSNorm(config.emb_dim, rngs)
        self.mlp = Mlp(config, rngs)
        self.dropout = nnx.Dropout(config.dropout_rate, broadcast_dims=(-2,), rngs=rngs)

    def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
        h = self.pre_attention_layer_norm(x)
        x = x + self.dropout(self.attention(h, h, None, deterministic), deterministic=deterministic)
        h = self.mlp(self.pre_mlp_layer_norm(x), deterministic)
        return x + self.dropout(h, deterministic=deterministic)


class DecoderLayer(nnx.Module):
    def __init__(self, config: ModelConfig, rngs: nnx.Rngs):
        self.pre_self_attention_layer_norm = RMSNorm(config.emb_dim, rngs)
        self.self_attention = Attention(config, rngs)
        self.pre_cross_attention_layer_norm = RMSNorm(config.emb_dim, rngs)
        self.encoder_decoder_attention = Attention(config, rngs)
        self.pre_mlp_layer_norm = RMSNorm(config.emb_dim, rngs)
        self.mlp = Mlp(config, rngs)
        self.dropout = nnx.Dropout(config.dropout_rate, broadcast_dims=(-2,), rngs=rngs)

    def __call__(self, y, self_kv, self_bias, cross_kv, cross_bias, deterministic=True):
        """One block. ``self_kv`` / ``cross_kv``: (keys, values) or None to project from the
        block's own input / the encoder output passed as ``cross_kv[0]`` when it is an array."""
        h = self.pre_self_attention_layer_norm(y)
        keys, values = self_kv if self_kv is not None else self.self_attention.project_kv(h)
        h = self.self_attention.attend(h, keys, values, self_bias, deterministic)
        y = y + self.dropout(h, deterministic=deterministic)
        h = self.pre_cross_attention_layer_norm(y)
        h = self.encoder_decoder_attention.attend(h, *cross_kv, cross_bias, deterministic)
        y = y + self.dropout(h, deterministic=deterministic)
        h = self.mlp(self.pre_mlp_layer_norm(y), deterministic)
        return y + self.dropout(h, deterministic=deterministic)


class Encoder(nnx.Module):
    def __init__(self, config: ModelConfig, rngs: nnx.Rngs):
        self.config = config
        self.continuous_inputs_projection = Dense(
            config.input_depth, config.emb_dim, ("vocab", "embed"), rngs,
            init=nnx.initializers.lecun_normal(), precision=config.matmul_precision,
        )  # fmt: skip
        for i in range(config.num_encoder_layers):
            setattr(self, f"layers_{i}", EncoderLayer(config, rngs))
        self.encoder_norm = RMSNorm(config.emb_dim, rngs)
        self.input_dropout = nnx.Dropout(config.dropout_rate, broadcast_dims=(-2,), rngs=rngs)
        self.output_dropout = nnx.Dropout(config.dropout_rate, rngs=rngs)

    def layers(self) -> list[EncoderLayer]:
        return [getattr(self, f"layers_{i}") for i in range(self.config.num_encoder_layers)]

    def __call__(self, features: jax.Array, deterministic: bool = True) -> jax.Array:
        """features float32 [B, T, input_depth] -> encoded [B, T, emb_dim]."""
        x = self.continuous_inputs_projection(features)
        x = x + sinusoid_table(self.config.max_position, self.config.emb_dim)[: x.shape[-2]]
        x = self.input_dropout(x, deterministic=deterministic)
        for layer in self.layers():
            x = layer(x, deterministic)
        return self.output_dropout(self.encoder_norm(x), deterministic=deterministic)


class DecodeCache(NamedTuple):
    """Keys/values for cached decoding, per layer, batch first (H heads, D head width).

    ``self_keys[layer]`` is a tuple of chunks [B, H, C, D] covering decoder positions
    [0, C), [C, 2C), ...; ``cross_keys[layer]`` is [B, H, S, D] for the S encoder frames.
    Chunks let the decoder read only the positions written so far without slicing a buffer it
    also updates, which XLA would answer by copying the whole cache at every step.
    """

    self_keys: tuple
    self_values: tuple
    cross_keys: tuple
    cross_values: tuple


class Decoder(nnx.Module):
    def __init__(self, config: ModelConfig, rngs: nnx.Rngs):
        self.config = config
        self.token_embedder = nnx.Embed(
            config.vocab_size, config.emb_dim, embedding_init=nnx.initializers.normal(1.0),
            rngs=rngs,
        )  # fmt: skip
        self.token_embedder.embedding.set_metadata(
            out_sharding=("vocab", "embed"), eager_sharding=False
        )
        for i in range(config.num_decoder_layers):
            setattr(self, f"layers_{i}", DecoderLayer(config, rngs))
        self.decoder_norm = RMSNorm(config.emb_dim, rngs)
        self.logits_dense = Dense(
            config.emb_dim, config.vocab_size, ("embed", "vocab"), rngs,
            precision=config.matmul_precision,
        )  # fmt: skip
        self.input_dropout = nnx.Dropout(config.dropout_rate, broadcast_dims=(-2,), rngs=rngs)
        self.output_dropout = nnx.Dropout(config.dropout_rate, broadcast_dims=(-2,), rngs=rngs)

    def layers(self) -> list[DecoderLayer]:
        return [getattr(self, f"layers_{i}") for i in range(self.config.num_decoder_layers)]

    def embed(self, tokens: jax.Array, positions: jax.Array) -> jax.Array:
        table = sinusoid_table(self.config.max_position, self.config.emb_dim)
        return self.token_embedder(tokens) + jnp.asarray(table)[positions]

    def head(self, y: jax.Array, deterministic: bool) -> jax.Array:
        y = self.output_dropout(self.decoder_norm(y), deterministic=deterministic)
        return self.logits_dense(y).astype(jnp.float32)

    def __call__(self, encoded, decoder_input_tokens, decoder_target_tokens, deterministic=True):
        """Teacher-forced logits float32 [B, T, vocab] (training and scoring).

        Masks as T5X: self-attention is causal and ignores PAD targets (``decoder_target_tokens
        > 0``); every query attends to every encoder frame, padded frames included.
        """
        length = decoder_input_tokens.shape[-1]
        y = self.embed(decoder_input_tokens, jnp.arange(length))
        y = self.input_dropout(y, deterministic=deterministic)
        valid = decoder_target_tokens > 0
        causal = jnp.tril(jnp.ones((length, length), bool))
        self_mask = causal[None] & valid[:, :, None] & valid[:, None, :]
        self_bias = jnp.where(self_mask, 0.0, NEG_BIAS)[:, None]
        cross_bias = jnp.where(valid, 0.0, NEG_BIAS)[:, None, :, None]
        for layer in self.layers():
            cross_kv = layer.encoder_decoder_attention.project_kv(encoded)
            y = layer(y, None, self_bias, cross_kv, cross_bias, deterministic)
        return self.head(y, deterministic)

    def init_cache(self, encoded: jax.Array, max_length: int, chunk_length: int) -> DecodeCache:
        """Empty self-attention caches in chunks of ``chunk_length`` positions (the last one
        shorter when needed), and the encoder's keys/values, computed once."""
        config = self.config
        chunk_length = min(chunk_length, max_length)
        sizes = [min(chunk_length, max_length - s) for s in range(0, max_length, chunk_length)]
        zeros = lambda: tuple(  # noqa: E731
            jnp.zeros((encoded.shape[0], config.num_heads, size, config.head_dim), jnp.float32)
            for size in sizes
        )
        layers = self.layers()
        cross = [layer.encoder_decoder_attention.project_kv(encoded) for layer in layers]
        return DecodeCache(
            tuple(zeros() for _ in layers),
            tuple(zeros() for _ in layers),
            tuple(k for k, _ in cross),
            tuple(v for _, v in cross),
        )

    def decode_step(self, tokens: jax.Array, cache: DecodeCache, index: jax.Array, limit: int):
        """Logits float32 [B, vocab] for ``tokens`` [B] at position ``index``; the updated cache.

        ``limit`` (static) is the end of the cache chunk that holds ``index``: the step writes
        that chunk and attends to it and the chunks before it. The search must therefore run in
        phases of exactly the cache's chunk length (mt3.model.decoding's ``phase_length``).
        """
        y = self.embed(tokens[:, None], index[None])
        chunk_length = cache.self_keys[0][0].shape[2]
        total = sum(chunk.shape[2] for chunk in cache.self_keys[0])
        if limit % chunk_length and limit != total:
            raise ValueError(
                f"decoding phase ends at {limit}, but the cache has chunks of {chunk_length}; "
                "use the same phase length as the cache's chunk length"
            )
        current = -(-limit // chunk_length) - 1  # static index of the chunk being filled
        offset = index - current * chunk_length
        positions = jnp.arange(current * chunk_length + cache.self_keys[0][current].shape[2])
        self_bias = jnp.where(positions <= index, 0.0, NEG_BIAS)[None, None, None]
        self_keys, self_values = [], []
        for i, layer in enumerate(self.layers()):
            h = layer.pre_self_attention_layer_norm(y)
            new_keys, new_values = layer.self_attention.project_kv(h)
            at = (0, 0, offset, 0)
            keys = list(cache.self_keys[i])
            values = list(cache.self_values[i])
            keys[current] = jax.lax.dynamic_update_slice(keys[current], new_keys, at)
            values[current] = jax.lax.dynamic_update_slice(values[current], new_values, at)
            self_keys.append(tuple(keys))
            self_values.append(tuple(values))
            self_kv = (tuple(keys[: current + 1]), tuple(values[: current + 1]))
            cross_kv = (cache.cross_keys[i], cache.cross_values[i])
            y = layer(y, self_kv, self_bias, cross_kv, None, deterministic=True)
        cache = cache._replace(self_keys=tuple(self_keys), self_values=tuple(self_values))
        return self.head(y, deterministic=True)[:, 0], cache

    def decode_rows(self, tokens: jax.Array, cache: DecodeCache, positions: jax.Array, limit: int):
        """``decode_step`` with a position per row (continuous batching: each row decodes its own
        segment, started whenever that row became free). ``positions`` [B] < ``limit`` (static):
        every row writes its keys/values at its own position and attends to the chunks below
        ``limit``, masked beyond its position. Logits float32 [B, vocab]; the updated cache."""
        y = self.embed(tokens[:, None], positions[:, None])
        chunk_length = cache.self_keys[0][0].shape[2]
        chunks = -(-limit // chunk_length)
        used = sum(chunk.shape[2] for chunk in cache.self_keys[0][:chunks])
        visible = jnp.arange(used)[None, :] <= positions[:, None]
        self_bias = jnp.where(visible, 0.0, NEG_BIAS)[:, None, None, :]
        rows = jnp.arange(tokens.shape[0])
        which, offset = positions // chunk_length, positions % chunk_length

        def write(chunks_of_layer, new):  # new [B, H, 1, D] at each row's own position
            updated = list(chunks_of_layer)
            for c in range(chunks):  # rows whose position is in another chunk write nowhere
                at = jnp.where(which == c, offset, updated[c].shape[2])
                updated[c] = updated[c].at[rows, :, at].set(new[:, :, 0], mode="drop")
            return tuple(updated)

        self_keys, self_values = [], []
        for i, layer in enumerate(self.layers()):
            h = layer.pre_self_attention_layer_norm(y)
            new_keys, new_values = layer.self_attention.project_kv(h)
            keys = write(cache.self_keys[i], new_keys)
            values = write(cache.self_values[i], new_values)
            self_keys.append(keys)
            self_values.append(values)
            self_kv = (keys[:chunks], values[:chunks])
            cross_kv = (cache.cross_keys[i], cache.cross_values[i])
            y = layer(y, self_kv, self_bias, cross_kv, None, deterministic=True)
        cache = cache._replace(self_keys=tuple(self_keys), self_values=tuple(self_values))
        return self.head(y, deterministic=True)[:, 0], cache


class Transformer(nnx.Module):
    """MT3's encoder-decoder. ``Transformer(config, rngs=nnx.Rngs(0))``."""

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
        self.config = config
        self.encoder = Encoder(config, rngs)
        self.decoder = Decoder(config, rngs)

    def encode(self, features: jax.Array, deterministic: bool = True) -> jax.Array:
        return self.encoder(features, deterministic)

    def __call__(self, features, decoder_input_tokens, decoder_target_tokens, deterministic=True):
        """Teacher-forced logits float32 [B, T, vocab] for features [B, S, input_depth]."""
        encoded = self.encoder(features, deterministic)
        return self.decoder(encoded, decoder_input_tokens, decoder_target_tokens, deterministic)


def count_params(model: nnx.Module) -> int:
    return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))

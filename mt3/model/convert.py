"""Import Magenta's released T5X checkpoints (docs/mt3.md §9) into our format (mt3.model.store).

A T5X checkpoint folder holds a msgpack file named ``checkpoint``: ``{'version', 'optimizer':
{'target': params, 'state': {...}}}``. Each parameter leaf is either an inline array (msgpack
ExtType 1: ``[shape, dtype, bytes]``) or a TensorStore spec pointing to a zarr folder beside the
msgpack (``target.encoder.layers_0.attention.query.kernel/``), read here with TensorStore. Both
forms are accepted for every leaf, and ``checkpoint_<step>/`` subfolders are found too.

Layer counts and widths are read from the arrays' shapes, so the 8+8 ``mt3``/``ismir2021``
releases, the ISMIR 2022 ``base`` shape and reduced test checkpoints all convert; the head count
cannot be seen in joined-head kernels and comes from the named variant (or ``num_heads``).
Every expected path and shape is checked, and missing or extra arrays are named.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import numpy as np
from flax import nnx

from mt3.atomic import check_writable
from mt3.config import ModelConfig, get_variant
from mt3.model.store import CheckpointError, param_dict, save_model
from mt3.model.t5 import Transformer

_FLAX_NDARRAY_EXT = 1
_VOCAB_OF_ROWS = {1536: "mt3", 1664: "ismir2021"}


def find_checkpoint_file(directory: Path) -> Path:
    """``DIR/checkpoint``, or the one in the highest ``DIR/checkpoint_<step>/``."""
    if (directory / "checkpoint").is_file():
        return directory / "checkpoint"
    steps = sorted(
        (int(m.group(1)), p)
        for p in directory.glob("checkpoint_*")
        if (m := re.fullmatch(r"checkpoint_(\d+)", p.name)) and (p / "checkpoint").is_file()
    )
    if not steps:
        raise CheckpointError(
            f"{directory}: no T5X 'checkpoint' file (expected the folder of gs://mt3/checkpoints/"
            "mt3/ or .../ismir2021/, copied with gsutil cp -r)"
        )
    return steps[-1][1] / "checkpoint"


def _decode_ext(code: int, data: bytes):
    import msgpack

    if code != _FLAX_NDARRAY_EXT:
        return msgpack.ExtType(code, data)
    shape, dtype, buffer = msgpack.unpackb(data, raw=False)
    return np.frombuffer(buffer, dtype=np.dtype(dtype)).reshape(shape)


def _read_zarr(spec: dict, folder: Path) -> np.ndarray:
    import tensorstore

    kvstore = dict(spec.get("kvstore", {}))
    relative = kvstore.get("path", "")
    path = Path(relative) if Path(relative).is_absolute() else folder / relative
    if not (path / ".zarray").is_file():
        raise CheckpointError(f"{path}: zarr array referenced by the checkpoint is missing")
    try:
        store = tensorstore.open(
            {"driver": "zarr", "kvstore": {"driver": "file", "path": os.path.abspath(path)}},
            open=True,
        ).result()
        return np.asarray(store.read().result())
    except Exception as error:  # tensorstore reports corrupt chunks with its own error types
        raise CheckpointError(f"{path}: cannot read zarr array ({error})") from None


def read_t5x_params(directory: str | Path) -> dict[str, np.ndarray]:
    """The parameters of a T5X checkpoint as {'encoder/layers_0/.../kernel': float32 array}."""
    import msgpack

    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: no such checkpoint folder")
    path = find_checkpoint_file(directory)
    try:
        tree = msgpack.unpackb(
            path.read_bytes(), ext_hook=_decode_ext, raw=False, strict_map_key=False
        )
    except Exception as error:
        raise CheckpointError(f"{path}: not a T5X msgpack checkpoint ({error})") from None
    if isinstance(tree, dict) and isinstance(tree.get("optimizer"), dict):
        target = tree["optimizer"].get("target")
    else:
        target = tree.get("target") if isinstance(tree, dict) else None
    if not isinstance(target, dict):
        raise CheckpointError(f"{path}: no optimizer/target parameter tree in the checkpoint")

    params = {}

    def walk(node, prefix):
        if isinstance(node, np.ndarray):
            params[prefix] = node.astype(np.float32)
        elif isinstance(node, dict) and "driver" in node and "kvstore" in node:
            params[prefix] = _read_zarr(node, path.parent).astype(np.float32)
        elif isinstance(node, dict):
            for key, child in node.items():
                walk(child, f"{prefix}/{key}" if prefix else key)
        else:
            raise CheckpointError(f"{path}: unexpected leaf {type(node).__name__} at {prefix}")

    walk(target, "")
    return params


def infer_config(params: dict[str, np.ndarray], base: ModelConfig, num_heads: int | None):
    """The base config with layer counts and widths taken from the checkpoint's shapes."""

    def shape(name):
        if name not in params:
            raise CheckpointError(f"checkpoint has no {name}; is this an MT3 checkpoint?")
        return params[name].shape

    count = lambda part: len(
        {m.group(1) for k in params if (m := re.match(rf"{part}/layers_(\d+)/", k))}
    )
    input_depth, emb_dim = shape("encoder/continuous_inputs_projection/kernel")
    joined = shape("encoder/layers_0/attention/query/kernel")[1]
    vocab_size = shape("decoder/token_embedder/embedding")[0]
    heads = num_heads or base.num_heads
    if joined % heads:
        raise CheckpointError(
            f"attention width {joined} is not divisible by {heads} heads; pass the head count"
        )
    vocab = _VOCAB_OF_ROWS.get(vocab_size, base.vocab)
    return dataclasses.replace(
        base,
        vocab=vocab,
        vocab_size=vocab_size,
        emb_dim=emb_dim,
        input_depth=input_depth,
        num_heads=heads,
        head_dim=joined // heads,
        num_encoder_layers=count("encoder"),
        num_decoder_layers=count("decoder"),
        mlp_dim=shape("encoder/layers_0/mlp/wi_0/kernel")[1],
    )


def _flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        flat.update(_flatten(value, name) if isinstance(value, dict) else {name: value})
    return flat


def t5x_to_model(params: dict[str, np.ndarray], config: ModelConfig) -> Transformer:
    """Our network with the checkpoint's arrays, after checking every path and shape."""
    model = Transformer(config, rngs=nnx.Rngs(0))
    expected = _flatten(param_dict(model))
    missing = sorted(set(expected) - set(params))
    extra = sorted(set(params) - set(expected))
    wrong = [
        f"{name} {params[name].shape} (expected {expected[name].shape})"
        for name in sorted(set(expected) & set(params))
        if params[name].shape != expected[name].shape
    ]
    problems = []
    for label, items in (("missing", missing), ("unexpected", extra), ("wrong shape", wrong)):
        if items:
            shown = ", ".join(items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise CheckpointError("checkpoint does not fit the model: " + "; ".join(problems))

    def fill(tree, prefix=""):
        return {
            key: fill(value, f"{prefix}/{key}" if prefix else key)
            if isinstance(value, dict)
            else params[f"{prefix}/{key}" if prefix else key]
            for key, value in tree.items()
        }

    state = nnx.state(model, nnx.Param)
    nnx.replace_by_pure_dict(state, fill(param_dict(model)))
    nnx.update(model, state)
    return model


def convert_checkpoint(
    t5x_dir: str | Path, out_dir: str | Path, variant: str = "mt3", num_heads=None
) -> ModelConfig:
    """Read a T5X checkpoint and write it in our format; returns the model config used."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise CheckpointError(f"{out_dir}: already exists; choose a new output folder")
    check_writable(out_dir)  # before the minutes of reading and converting
    params = read_t5x_params(t5x_dir)
    config = infer_config(params, get_variant(variant), num_heads)
    model = t5x_to_model(params, config)
    save_model(model, out_dir)
    return config

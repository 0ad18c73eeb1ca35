"""Our model checkpoint format: ``DIR/config.json`` (the ModelConfig) + ``DIR/params`` (orbax).

``params`` holds the network's parameters as a nested dict keyed by the T5X module names
(``encoder/layers_0/attention/query/kernel``), float32.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from mt3.model.config import ModelConfig
from mt3.model.t5 import Transformer

CONFIG_FILE = "config.json"
PARAMS_DIR = "params"


class CheckpointError(ValueError):
    """A missing, incomplete or incompatible checkpoint."""


def param_dict(model: Transformer) -> dict:
    """Parameters as a nested dict of numpy arrays."""
    return jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(model, nnx.Param)))


def save_model(model: Transformer, directory: str | os.PathLike) -> None:
    """Write config + parameters; the directory appears complete or not at all."""
    import orbax.checkpoint as ocp

    directory = Path(directory).absolute()
    if directory.exists():
        raise CheckpointError(f"{directory}: already exists; choose a new output folder")
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        (staging / CONFIG_FILE).write_text(
            json.dumps(dataclasses.asdict(model.config), indent=1) + "\n"
        )
        checkpointer = ocp.StandardCheckpointer()
        checkpointer.save(staging / PARAMS_DIR, param_dict(model))
        checkpointer.wait_until_finished()
        os.replace(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def read_config(directory: str | os.PathLike) -> ModelConfig:
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(
            f"{directory}: not an mt3 checkpoint (no {CONFIG_FILE}); convert Magenta's T5X "
            "checkpoints with `mt3 convert-checkpoint` first"
        )
    try:
        return ModelConfig(**json.loads(path.read_text()))
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: unreadable model config ({error})") from None


def load_model(directory: str | os.PathLike) -> Transformer:
    """Build the network described by ``DIR/config.json`` and restore its parameters; a training
    workdir (``DIR/checkpoints``) gives the network of its latest checkpoint."""
    import orbax.checkpoint as ocp

    if (Path(directory) / "checkpoints").is_dir():
        from mt3.train.train import load_trained_model

        return load_trained_model(directory)
    config = read_config(directory)
    model = nnx.eval_shape(lambda: Transformer(config, rngs=nnx.Rngs(0)))
    state = nnx.state(model, nnx.Param)
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), nnx.to_pure_dict(state)
    )
    params_path = Path(directory).absolute() / PARAMS_DIR
    if not params_path.is_dir():
        raise CheckpointError(f"{directory}: no {PARAMS_DIR}/ folder with the parameters")
    try:
        restored = ocp.StandardCheckpointer().restore(params_path, abstract)
    except Exception as error:  # orbax raises several types for mismatched trees
        raise CheckpointError(
            f"{params_path}: parameters do not match {CONFIG_FILE} ({type(error).__name__})"
        ) from None
    model = Transformer(config, rngs=nnx.Rngs(0))
    state = nnx.state(model, nnx.Param)
    nnx.replace_by_pure_dict(state, restored)
    nnx.update(model, state)
    return model

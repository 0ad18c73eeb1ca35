"""The configuration tree: every default, once, in frozen dataclasses that gin binds.

A run is ``RunConfig(model, data, train)``:

* :class:`ModelConfig`: a **variant**, everything about the network that a checkpoint must agree
  with: the token vocabulary, the encoder's segment length, the decoder's length and the network
  sizes. ``VARIANTS`` names the four we ship; every command selects one with ``--variant``.
* :class:`DataConfig`: where the prepared datasets are and how the training mixture draws from
  them (temperature, Slakh sub-mixes, target length).
* :class:`TrainConfig`: which variant to train, the optimizer, the schedule, the loop's
  bookkeeping and the mesh.

gin files bind fields of these three classes, and nothing else (docs/architecture.md):

    TrainConfig.variant = 'tiny'            # the network: VARIANTS['tiny'] ...
    ModelConfig.dropout_rate = 0.0          # ... with fields replaced
    DataConfig.mixture = 'synth-piano'
    DataConfig.temperature = 3.0
    TrainConfig.steps = 3600

``load_config`` resolves the bindings into a ``RunConfig``; training writes it to the workdir
(config.json), and a run's checkpoints are read back with it. Variants (docs/mt3.md §5.1):

========== ====== ====== ===== ====== ===== ========= ======== ==========
variant    layers d_model heads d_head d_ff  vocab rows segment  parameters
========== ====== ====== ===== ====== ===== ========= ======== ==========
mt3        8 + 8  512    6     64     1024  1536      256 fr.  45,896,704
ismir2021  8 + 8  512    6     64     1024  1664      512 fr.  46,027,776
base       12+12  768    12    64     2048  1536      256 fr.  (ISMIR 2022)
tiny       2 + 2  128    2     32     256   1536      256 fr.  CPU tests, the demo
========== ====== ====== ===== ====== ===== ========= ======== ==========
"""

from __future__ import annotations

import dataclasses
import json
import tokenize
from pathlib import Path

import gin
from mt3.audio import NUM_MEL_BINS
from mt3.errors import Mt3Error
from mt3.events import TARGET_LENGTH
from mt3.vocab import vocabulary

MIXTURE_TEMPERATURE = 10 / 3  # MT3's mixing temperature (docs/mt3.md §4.12)
SCHEDULES = ("constant", "cosine")  # learning-rate schedules (mt3.train.optim)
TRAINABLE = ("all", "decoder")  # which parameters a run updates (mt3.train.train.trainable_filter)
MIN_SUBMIX_STEMS = 4  # MT3's Slakh sub-mixes draw at least this many stems (docs/mt3.md §4.5)


class ConfigError(Mt3Error, ValueError):
    """A config value, gin file or binding that does not give a valid configuration."""


def _check(problems: list[str], owner: str) -> None:
    if problems:
        raise ConfigError(f"{owner}: " + "; ".join(problems))


_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}


def _check_types(config, owner: str) -> None:
    """Every field of a plain type holds a value of that type (``steps = 10.5`` or
    ``steps = 'many'`` is a one-line error naming the field, before any range check)."""
    problems = []
    for field in dataclasses.fields(config):
        kinds = _TYPES.get(field.type)
        value = getattr(config, field.name)
        if kinds and (
            not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds)
        ):
            problems.append(f"{field.name} must be {field.type}, got {value!r}")
    _check(problems, owner)


@gin.configurable
@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """A variant: every size of the network and the shapes of what it reads and writes.

    ``name`` is the variant's name; ``vocab`` names the token vocabulary (mt3.vocab);
    ``vocab_size`` is the number of embedding and logit rows (MT3 rounds the vocabulary up to a
    multiple of 128); ``segment_frames`` is the encoder's length in 8 ms frames (one 2.048 s
    segment for mt3) and ``max_decode_length`` the decoder's in ids, EOS included.
    """

    name: str = "mt3"
    vocab: str = "mt3"
    vocab_size: int = 1536
    emb_dim: int = 512
    num_heads: int = 6
    head_dim: int = 64
    num_encoder_layers: int = 8
    num_decoder_layers: int = 8
    mlp_dim: int = 1024
    dropout_rate: float = 0.1
    input_depth: int = NUM_MEL_BINS
    segment_frames: int = 256
    max_decode_length: int = TARGET_LENGTH
    max_position: int = 2048  # rows of the fixed sinusoid table
    # "highest" keeps float32 matmuls exact on GPUs/TPUs too (TF32/bf16 passes flip MT3's greedy
    # tokens, docs/goldens.md model §5); "default" trades that for speed.
    matmul_precision: str = "highest"

    def __post_init__(self):
        _check_types(self, f"model config {self.name!r}")
        problems = []
        if self.vocab_size < vocabulary(self.vocab).base_size:
            problems.append(f"vocab_size {self.vocab_size} is smaller than the {self.vocab} codec")
        for field in ("emb_dim", "num_heads", "head_dim", "mlp_dim", "input_depth",
                      "segment_frames", "max_decode_length"):  # fmt: skip
            if getattr(self, field) < 1:
                problems.append(f"{field} must be positive")
        if self.emb_dim % 2:
            problems.append("emb_dim must be even (sin and cos halves)")
        if max(self.segment_frames, self.max_decode_length) > self.max_position:
            problems.append("segment_frames and max_decode_length must not exceed max_position")
        if self.matmul_precision not in ("highest", "high", "default"):
            problems.append("matmul_precision must be highest, high or default")
        if not 0.0 <= self.dropout_rate < 1.0:
            problems.append("dropout_rate must be in [0, 1)")
        _check(problems, f"model config {self.name!r}")

    @property
    def joined_dim(self) -> int:
        return self.num_heads * self.head_dim

    def num_params(self) -> int:
        """Parameter count from the sizes alone (no biases; untied logits; fixed positions)."""
        d, j, f = self.emb_dim, self.joined_dim, self.mlp_dim
        attention = 4 * d * j
        mlp = 3 * d * f
        encoder = self.num_encoder_layers * (attention + mlp + 2 * d) + self.input_depth * d + d
        decoder = self.num_decoder_layers * (2 * attention + mlp + 3 * d)
        decoder += 2 * self.vocab_size * d + d
        return encoder + decoder


VARIANTS = {
    "mt3": ModelConfig(),
    "ismir2021": ModelConfig(
        name="ismir2021", vocab="ismir2021", vocab_size=1664, segment_frames=512
    ),
    "base": ModelConfig(
        name="base",
        emb_dim=768,
        num_heads=12,
        num_encoder_layers=12,
        num_decoder_layers=12,
        mlp_dim=2048,
    ),  # fmt: skip
    "tiny": ModelConfig(
        name="tiny",
        emb_dim=128,
        num_heads=2,
        head_dim=32,
        num_encoder_layers=2,
        num_decoder_layers=2,
        mlp_dim=256,
    ),  # fmt: skip
}


def get_variant(name: str, **overrides) -> ModelConfig:
    """A named variant ('mt3', 'ismir2021', 'base', 'tiny'), optionally with fields replaced."""
    try:
        config = VARIANTS[name]
    except KeyError:
        raise ConfigError(
            f"unknown variant {name!r}; choose one of {', '.join(VARIANTS)}"
        ) from None
    return dataclasses.replace(config, **overrides) if overrides else config


@gin.configurable
@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Training input.

    Attributes:
      data_root: folder with one prepared dataset per subfolder (`mt3 prepare ... --out ROOT/NAME`).
      mixture: a named mixture (mt3, ismir2021, synth: mt3.data.datasets.MIXTURES) or a
        comma-separated list of subfolders of ``data_root``.
      temperature: mixing rates are proportional to n^(1/T), n = pieces per dataset (MT3: 10/3).
      submix: draw random sub-mixes of recordings that keep their stems (Slakh2100; MT3: yes),
        of at least ``min_submix_stems`` stems (MT3: 4; all stems when there are fewer).
      target_length: decoder positions per example (0: the variant's max_decode_length, 1024).
        Short music needs fewer; every position costs time, so the demo trains at 128. Longer
        targets are cut.
    """

    data_root: str = "data"
    mixture: str = "synth"
    temperature: float = MIXTURE_TEMPERATURE
    submix: bool = True
    min_submix_stems: int = MIN_SUBMIX_STEMS
    target_length: int = 0

    def __post_init__(self):
        _check_types(self, "DataConfig")
        problems = []
        if not self.temperature > 0:
            problems.append(f"temperature must be positive, got {self.temperature}")
        if self.min_submix_stems < 1:
            problems.append(f"min_submix_stems must be at least 1, got {self.min_submix_stems}")
        if self.target_length < 0:
            problems.append(f"target_length must not be negative, got {self.target_length}")
        if not self.mixture.strip(", "):
            problems.append("mixture must name a mixture or datasets")
        _check(problems, "DataConfig")

    def target_length_for(self, model: ModelConfig) -> int:
        return self.target_length or model.max_decode_length


@gin.configurable
@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A training run.

    Attributes:
      variant: the network to train (mt3, ismir2021, base, tiny); ModelConfig bindings replace
        its fields.
      steps, batch_size: training length and global batch (examples per step, all devices).
      learning_rate: MT3 uses a constant 1e-3 with Adafactor.
      schedule: 'constant' (MT3) or 'cosine' (decay to 0 at ``steps``: short runs end better).
      momentum: Adafactor's first-moment decay (MT3: 0, none).
      warmup_steps: linear warm-up to ``learning_rate`` over so many steps (MT3: 0).
      z_loss: z-loss weight (MT3 1e-4).
      time_init: start the time-shift embeddings and logits as position sinusoids
        (mt3.model.t5.init_time_rows; not MT3's, which starts them as noise). Ignored with
        ``init_from``.
      seed: parameters, dropout and data order.
      log_every_steps, checkpoint_every_steps, keep_checkpoints: bookkeeping.
      mesh_model: devices along the `model` mesh axis (1: pure data parallelism, MT3's setting);
        the rest form the `data` axis.
      fsdp: also split parameters and optimizer state over the `data` axis (fully sharded data
        parallelism: memory per device falls with the device count; same results).
      init_from: a model folder or training run whose parameters start the run (e.g. a
        converted MT3).
      eval_every_steps: transcribe and score ``eval_limit`` recordings of each dataset's
        ``eval_split`` every so many steps (0: never); logged as eval/<dataset>/<metric>.
      trainable: the parameters a run updates: 'all', or 'decoder' (the encoder stays frozen:
        no encoder gradients and no optimizer state for it; a cheaper fine-tune, gin/finetune.gin
        gives both's measured cost and scores).
    """

    variant: str = "tiny"
    steps: int = 1000
    batch_size: int = 8
    learning_rate: float = 1e-3
    schedule: str = "constant"
    momentum: float = 0.0
    warmup_steps: int = 0
    z_loss: float = 1e-4
    time_init: bool = False
    seed: int = 0
    log_every_steps: int = 10
    checkpoint_every_steps: int = 250
    keep_checkpoints: int = 3
    mesh_model: int = 1
    fsdp: bool = False
    init_from: str = ""
    eval_every_steps: int = 0
    eval_split: str = "validation"
    eval_limit: int = 4
    trainable: str = "all"

    def __post_init__(self):
        _check_types(self, "TrainConfig")
        problems = []
        for name in ("steps", "batch_size", "log_every_steps", "checkpoint_every_steps",
                     "keep_checkpoints", "mesh_model", "eval_limit"):  # fmt: skip
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.warmup_steps < 0 or self.eval_every_steps < 0:
            problems.append("warmup_steps and eval_every_steps must not be negative")
        if not 0.0 <= self.momentum < 1.0:
            problems.append(f"momentum must be in [0, 1), got {self.momentum}")
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule must be {' or '.join(SCHEDULES)}, got {self.schedule!r}")
        if not self.learning_rate > 0:
            problems.append(f"learning_rate must be positive, got {self.learning_rate}")
        if self.trainable not in TRAINABLE:
            problems.append(f"trainable must be {' or '.join(TRAINABLE)}, got {self.trainable!r}")
        if self.variant not in VARIANTS:
            problems.append(
                f"unknown variant {self.variant!r}; choose one of {', '.join(VARIANTS)}"
            )
        _check(problems, "TrainConfig")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """The resolved tree of a run; ``model.name`` is the trained variant."""

    model: ModelConfig = VARIANTS[TrainConfig.variant]
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1) + "\n"

    def to_gin(self) -> str:
        """Every field as a gin binding: `mt3 train --gin_file` of it reruns the same config."""
        lines = [f"TrainConfig.variant = {self.train.variant!r}"]
        for part in (self.model, self.data, self.train):
            owner = type(part).__name__
            for field in dataclasses.fields(part):
                if (owner, field.name) != ("TrainConfig", "variant"):
                    lines.append(f"{owner}.{field.name} = {getattr(part, field.name)!r}")
        return "\n".join(lines) + "\n"

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        """Read ``to_json``'s output; also the flat TrainConfig that runs wrote before the tree."""
        tree = json.loads(text)
        if "train" not in tree:
            tree = _from_flat(tree)
        return cls(ModelConfig(**tree["model"]), DataConfig(**tree["data"]),
                   TrainConfig(**tree["train"]))  # fmt: skip


def _from_flat(flat: dict) -> dict:
    """A run's config.json as written before the tree: one TrainConfig with model, data_root,
    mixture, target_length and dropout_rate among its fields."""
    flat = dict(flat)
    variant = flat.pop("model", TrainConfig.variant)
    dropout = flat.pop("dropout_rate", None)
    model = get_variant(variant, **({} if dropout is None else {"dropout_rate": dropout}))
    data = {k: flat.pop(k) for k in ("data_root", "mixture", "target_length") if k in flat}
    return {"model": dataclasses.asdict(model), "data": data, "train": {**flat, "variant": variant}}


# Bindings that older gin files used, and where they live now.
MOVED_BINDINGS = {
    "TrainConfig.model": "TrainConfig.variant",
    "TrainConfig.data_root": "DataConfig.data_root",
    "TrainConfig.mixture": "DataConfig.mixture",
    "TrainConfig.target_length": "DataConfig.target_length",
    "TrainConfig.dropout_rate": "ModelConfig.dropout_rate",
}


def load_config(gin_files=(), gin_params=()) -> RunConfig:
    """The RunConfig of gin files and bindings; every problem is a one-line ConfigError."""
    for path in gin_files:
        if not Path(path).is_file():
            raise ConfigError(f"{path}: no such gin file")
    gin.clear_config()
    try:
        gin.parse_config_files_and_bindings([str(f) for f in gin_files], list(gin_params))
        train, data = TrainConfig(), DataConfig()
        model = dataclasses.replace(get_variant(train.variant), **gin.get_bindings(ModelConfig))
    except ConfigError as error:  # raised inside a gin call: drop the lines gin appends
        raise ConfigError(str(error).splitlines()[0]) from None
    except (ValueError, TypeError, SyntaxError, tokenize.TokenError) as error:
        text = str(error)
        for old, new in MOVED_BINDINGS.items():
            owner, field = old.split(".")
            if f"'{owner}' doesn't have a parameter named '{field}'" in text:
                raise ConfigError(f"bad training config: {old} is now {new}") from None
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        lines = [line for line in lines if not line.startswith("In call to configurable")]
        where = f" ({lines[-1]})" if len(lines) > 1 else ""
        raise ConfigError(f"bad training config: {lines[0] if lines else error}{where}") from None
    finally:
        gin.clear_config()
    return RunConfig(model, data, train)

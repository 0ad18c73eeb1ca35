"""Every default of a training run, in one frozen dataclass that gin files bind (design.md §6).

mt3 train --gin_file gin/demo.gin --gin_param 'TrainConfig.steps = 500' --workdir runs/demo
"""

from __future__ import annotations

import dataclasses
import tokenize

import gin


@gin.configurable
@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A training run. Sizes come from the named model variant; data from prepared folders.

    Attributes:
      model: variant name (mt3, ismir2021, tiny, base).
      data_root: folder with one prepared dataset per subfolder (`mt3 prepare ... --out ROOT/NAME`).
      mixture: named mixture of mt3.data.pipeline.MIXTURES (mt3, ismir2021, synth) or a
        comma-separated list of subfolders of ``data_root``.
      steps, batch_size: training length and global batch (examples per step, all devices).
      learning_rate: MT3 uses a constant 1e-3 with Adafactor.
      schedule: 'constant' (MT3) or 'cosine' (decay to 0 at ``steps``: short runs end better).
      momentum: Adafactor's first-moment decay (MT3: 0, none).
      warmup_steps: linear warm-up to ``learning_rate`` over so many steps (MT3: 0).
      target_length: decoder positions per example (0: the variant's 1024). Short music needs
        fewer; every position costs time, so the demo trains at 128. Longer targets are cut.
      dropout_rate: overrides the variant's (None keeps it; MT3 0.1).
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
      init_from: an mt3 checkpoint folder whose parameters start the run (e.g. a converted MT3).
      eval_every_steps: transcribe and score ``eval_limit`` recordings of each dataset's
        ``eval_split`` every so many steps (0: never); logged as eval/<dataset>/<metric>.
    """

    model: str = "tiny"
    data_root: str = "data"
    mixture: str = "synth"
    steps: int = 1000
    batch_size: int = 8
    learning_rate: float = 1e-3
    schedule: str = "constant"
    momentum: float = 0.0
    warmup_steps: int = 0
    target_length: int = 0
    dropout_rate: float | None = None
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

    def __post_init__(self):
        for name in ("steps", "batch_size", "log_every_steps", "checkpoint_every_steps",
                     "keep_checkpoints", "mesh_model"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(
                    f"TrainConfig.{name} must be at least 1, got {getattr(self, name)}"
                )
        if self.warmup_steps < 0 or self.target_length < 0:
            raise ValueError("TrainConfig.warmup_steps and target_length must not be negative")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"TrainConfig.momentum must be in [0, 1), got {self.momentum}")
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"TrainConfig.schedule must be constant or cosine: {self.schedule!r}")
        if not self.learning_rate > 0:
            raise ValueError(
                f"TrainConfig.learning_rate must be positive, got {self.learning_rate}"
            )


class ConfigError(ValueError):
    """A gin file or binding that does not give a valid TrainConfig."""


def load_config(gin_files=(), gin_params=()) -> TrainConfig:
    """TrainConfig from gin files and bindings; errors become one-line ConfigErrors."""
    from pathlib import Path

    for path in gin_files:
        if not Path(path).is_file():
            raise ConfigError(f"{path}: no such gin file")
    gin.clear_config()
    try:
        gin.parse_config_files_and_bindings([str(f) for f in gin_files], list(gin_params))
        return TrainConfig()
    except (ValueError, TypeError, SyntaxError, tokenize.TokenError) as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        lines = [line for line in lines if not line.startswith("In call to configurable")]
        where = f" ({lines[-1]})" if len(lines) > 1 else ""
        raise ConfigError(f"bad training config: {lines[0] if lines else error}{where}") from None

"""Every default of a training run, in one frozen dataclass that gin files bind (design.md §6).

mt3 train --gin_file gin/demo.gin --gin_param 'TrainConfig.steps = 500' --workdir runs/demo
"""

from __future__ import annotations

import dataclasses

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
      dropout_rate: overrides the variant's (None keeps it; MT3 0.1).
      z_loss: z-loss weight (MT3 1e-4).
      seed: parameters, dropout and data order.
      log_every_steps, checkpoint_every_steps, keep_checkpoints: bookkeeping.
      mesh_model: devices along the `model` mesh axis (1: pure data parallelism, MT3's setting);
        the rest form the `data` axis.
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
    dropout_rate: float | None = None
    z_loss: float = 1e-4
    seed: int = 0
    log_every_steps: int = 10
    checkpoint_every_steps: int = 250
    keep_checkpoints: int = 3
    mesh_model: int = 1
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
        if not self.learning_rate > 0:
            raise ValueError(
                f"TrainConfig.learning_rate must be positive, got {self.learning_rate}"
            )

"""Model configurations: MT3's T5.1.1-style encoder-decoder and its named sizes (spec §5).

========== ====== ====== ===== ====== ===== ========= ==========
variant    layers d_model heads d_head d_ff  vocab rows parameters
========== ====== ====== ===== ====== ===== ========= ==========
mt3        8 + 8  512    6     64     1024  1536      45,896,704
ismir2021  8 + 8  512    6     64     1024  1664      46,027,776
base       12+12  768    12    64     2048  1536      (ISMIR 2022)
tiny       2 + 2  128    2     32     256   1536      CPU tests, the demo
========== ====== ====== ===== ====== ===== ========= ==========
"""

from __future__ import annotations

import dataclasses

from mt3.audio import NUM_MEL_BINS
from mt3.vocab import vocabulary


class ModelConfigError(ValueError):
    """An unknown variant or inconsistent model sizes."""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Every size of the network. ``vocab`` names the token vocabulary; ``vocab_size`` is the
    number of embedding and logit rows (MT3 rounds the vocabulary up to a multiple of 128)."""

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
    segment_frames: int = 256  # encoder length: 256 frames (mt3) or 512 (ismir2021)
    max_decode_length: int = 1024  # decoder length, EOS included
    max_position: int = 2048  # rows of the fixed sinusoid table
    # "highest" keeps float32 matmuls exact on GPUs/TPUs too (TF32/bf16 passes flip MT3's greedy
    # tokens, golden/model README §5); "default" trades that for speed.
    matmul_precision: str = "highest"

    def __post_init__(self):
        problems = []
        if self.vocab_size < vocabulary(self.vocab).base_size:
            problems.append(f"vocab_size {self.vocab_size} is smaller than the {self.vocab} codec")
        for field in ("emb_dim", "num_heads", "head_dim", "mlp_dim", "input_depth"):
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
        if problems:
            raise ModelConfigError(f"model config {self.name!r}: " + "; ".join(problems))

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


def get_model_config(name: str, **overrides) -> ModelConfig:
    """A named variant ('mt3', 'ismir2021', 'base', 'tiny'), optionally with fields replaced."""
    try:
        config = VARIANTS[name]
    except KeyError:
        raise ModelConfigError(
            f"unknown model config {name!r}; choose one of {', '.join(VARIANTS)}"
        ) from None
    return dataclasses.replace(config, **overrides) if overrides else config

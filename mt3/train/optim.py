"""MT3's optimizer (spec §6.1-6.2): Adafactor with decay 0.8, no momentum, update clipping 1.0,
parameter-scaled steps and factored second moments for dims >= 128, at a constant learning rate."""

from __future__ import annotations

import optax


def mt3_adafactor(learning_rate: float = 1e-3) -> optax.GradientTransformation:
    return optax.adafactor(
        learning_rate=learning_rate,
        min_dim_size_to_factor=128,
        decay_rate=0.8,
        decay_offset=0,
        multiply_by_parameter_scale=True,
        clipping_threshold=1.0,
        momentum=None,
        eps=1e-30,
    )

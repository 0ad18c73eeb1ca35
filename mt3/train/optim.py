"""MT3's optimizer (docs/mt3.md §6.1-6.2): Adafactor with decay 0.8, no momentum, update clipping
1.0, parameter-scaled steps and factored second moments for dims >= 128, at a constant learning
rate.

Short runs (the demo) may add a linear warm-up and a cosine decay to zero at the last step; MT3
uses neither."""

from __future__ import annotations

import optax

from mt3.config import SCHEDULES, ConfigError


def learning_rate_schedule(peak: float, schedule: str = "constant", warmup: int = 0,
                           steps: int = 0):  # fmt: skip
    """A constant rate (after ``warmup`` linear steps), or warm-up then cosine decay to 0."""
    if schedule not in SCHEDULES:
        raise ConfigError(
            f"unknown learning-rate schedule {schedule!r}; use {' or '.join(SCHEDULES)}"
        )
    if schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(0.0, peak, max(warmup, 1), max(steps, warmup + 1))
    return optax.linear_schedule(0.0, peak, warmup) if warmup else peak


def mt3_adafactor(learning_rate=1e-3, momentum: float = 0.0) -> optax.GradientTransformation:
    """MT3's Adafactor at a rate or a schedule (step -> rate); ``momentum`` > 0 adds a first
    moment (MT3: none)."""
    return optax.adafactor(
        learning_rate=learning_rate,
        min_dim_size_to_factor=128,
        decay_rate=0.8,
        decay_offset=0,
        multiply_by_parameter_scale=True,
        clipping_threshold=1.0,
        momentum=momentum or None,
        eps=1e-30,
    )

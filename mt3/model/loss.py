"""MT3's training loss (docs/mt3.md §6.3): softmax cross-entropy plus z-loss, summed over target
tokens.

Per token: -log softmax(logits)[target] + z * logsumexp(logits)^2 with z = 1e-4, weighted by
``targets > 0`` (EOS counts, PAD does not), and **summed** over the batch (t5x with
``loss_normalizing_factor=None``; Adafactor is nearly invariant to the scale).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Z_LOSS = 1e-4


def token_losses(logits: jax.Array, targets: jax.Array, z_loss: float = Z_LOSS):
    """(cross-entropy + z-loss, z-loss) per token: float32 [B, T] each."""
    logits = logits.astype(jnp.float32)
    log_z = jax.nn.logsumexp(logits, axis=-1)
    target_logits = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    z_term = z_loss * jnp.square(log_z)
    return log_z - target_logits + z_term, z_term


def sequence_loss(logits: jax.Array, targets: jax.Array, z_loss: float = Z_LOSS) -> dict:
    """Summed loss over non-PAD targets, with the z-loss part and the token count."""
    weights = (targets > 0).astype(jnp.float32)
    per_token, z_term = token_losses(logits, targets, z_loss)
    return {
        "loss": jnp.sum(per_token * weights),
        "z_loss": jnp.sum(z_term * weights),
        "tokens": jnp.sum(weights),
    }

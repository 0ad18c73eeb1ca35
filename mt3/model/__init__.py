"""MT3's T5 encoder-decoder (Flax NNX), cached decoding and T5X checkpoint import."""

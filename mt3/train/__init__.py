"""Training: one loop (train.py), MT3's optimizer and sharding rules, checkpoints, metrics."""

"""Training and evaluation data: raw public releases -> record shards (prepare), and readers."""

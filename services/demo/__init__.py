"""``liaison demo``: provision the sample directory, start a hub, and play a MINUSCA scenario."""

"""Runs: starting a training run, its directory and config, finding its checkpoints, loading it back, provenance."""

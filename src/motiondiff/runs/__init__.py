"""Finished runs: their directories, configs and checkpoints, loading them back, and recording provenance."""

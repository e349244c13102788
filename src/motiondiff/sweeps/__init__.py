"""Sweeps: per-job status records, the sweep summary, finding jobs and runs, and comparing them."""

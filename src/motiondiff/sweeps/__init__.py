"""Sweeps: per-job status records, the sweep summary, and finding the jobs and finished runs of a sweep."""

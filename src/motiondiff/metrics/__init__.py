"""Metrics as plain numpy functions, and torchmetrics Metrics that accumulate and sync them."""

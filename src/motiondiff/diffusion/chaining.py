"""Longer sequences from a window model: each new window continues the last one's frames."""

from typing import Callable

import torch

from motiondiff.core.types import LongMotion, Motion


def chain_windows(sample: Callable, first: Motion, num_windows: int, overlap: int) -> LongMotion:
    """Extend `first` (B, N, F) by `num_windows - 1` windows, each generated with its first
    `overlap` frames fixed to the last `overlap` frames so far. `sample(known, known_mask)`
    returns a window. Result: (B, N + (num_windows - 1) * (N - overlap), F)."""
    batch, window, _ = first.shape
    assert 0 < overlap < window, f"overlap must lie in (0, {window}), got {overlap}"
    pieces = [first]
    known_mask = torch.zeros(batch, window, dtype=torch.bool, device=first.device)
    known_mask[:, :overlap] = True
    previous = first
    for _ in range(num_windows - 1):
        known = torch.zeros_like(first)
        known[:, :overlap] = previous[:, -overlap:]
        previous = sample(known, known_mask)  # (B, N, F)
        pieces.append(previous[:, overlap:])
    return torch.cat(pieces, dim=1)

"""Longer sequences from a window model: windows over the sequence, each one continuing the frames made so far."""

from typing import Callable, Optional

import torch
from torch import Tensor

from motiondiff.core.types import LongMotion, Motion


def window_starts(length: int, window: int, overlap: int) -> list:
    """The first frame of each window of `window` frames over `length` frames, `window - overlap` apart; the last
    window ends at `length` (so it may share more than `overlap` frames with the one before)."""
    assert length >= window and 0 < overlap < window, (length, window, overlap)
    starts = list(range(0, length - window + 1, window - overlap))
    return starts if starts[-1] == length - window else [*starts, length - window]


def sample_in_windows(
    sample: Callable, known: LongMotion, keep: Tensor, window: int, overlap: int, backward: bool = False
) -> LongMotion:
    """A sequence (B, L, F) made window by window: `sample(known, known_mask)` returns a window (B, N, F) holding
    `known` where `known_mask` (B, N) or (B, N, F) is True. Each window keeps `known` where `keep` ((B, L) or
    (B, L, F), bool) says and the frames earlier windows made; windows whose values are all kept are not sampled.
    Windows go from the start (or from the end with `backward`, to grow a sequence into its past)."""
    assert known.shape[:2] == keep.shape[:2] and keep.dtype == torch.bool, (known.shape, keep.shape, keep.dtype)
    result = known.clone()
    made = torch.zeros(known.shape[1], dtype=torch.bool, device=known.device)  # (L,): frames a window has made
    starts = window_starts(known.shape[1], window, overlap)
    for start in reversed(starts) if backward else starts:
        span = slice(start, start + window)
        mask = keep[:, span] | made[span].view(1, window, *([1] * (keep.ndim - 2)))  # (B, N) or (B, N, F)
        if not bool(mask.all()):
            result[:, span] = sample(result[:, span], mask)  # (B, N, F)
        made[span] = True
    return result


class WindowedNetwork:
    """A window network run over a longer sequence: the sequence cut into overlapping windows (`window_starts`), all
    of them denoised in one batched call, their outputs averaged where they overlap with weights that fall smoothly to
    near zero at each window's ends, so that neighbouring windows hand over without a kink (MultiDiffusion, Bar-Tal et
    al. 2023: the windows agree at every step instead of each one continuing a finished neighbour)."""

    def __init__(self, network: Callable, window: int, overlap: int, windows_per_call: int = 256):
        assert 0 < overlap < window and windows_per_call > 0, (window, overlap, windows_per_call)
        self.network, self.window, self.overlap, self.windows_per_call = network, window, overlap, windows_per_call
        ramp = torch.arange(window, dtype=torch.float64)
        self.taper = torch.sin(torch.pi * (ramp + 0.5) / window) ** 2  # (N,): Hann, near 0 and flat at the ends

    def __call__(self, x: Tensor, t: Tensor, cond=None, mask=None) -> Tensor:
        batch, length, _ = x.shape  # (B, L, F)
        assert cond is None and mask is None, "windowed sampling is for unconditional, unpadded sequences"
        if length == self.window:
            return self.network(x, t, cond=None, mask=None)
        t = t.reshape(-1).expand(batch)  # (B,): a single step for every sequence, or one each
        taper = self.taper.to(x)[None, :, None]  # (1, N, 1)
        total, weight = torch.zeros_like(x), x.new_zeros(1, length, 1)
        starts = window_starts(length, self.window, self.overlap)
        for first in range(0, len(starts), self.windows_per_call):  # windows_per_call windows x B rows a call
            group = starts[first : first + self.windows_per_call]
            pieces = torch.cat([x[:, s : s + self.window] for s in group])  # (W*B, N, F), window-major
            outputs = self.network(pieces, t.repeat(len(group)), cond=None, mask=None).chunk(len(group))
            for start, output in zip(group, outputs):  # output: (B, N, F)
                total[:, start : start + self.window] += taper * output.to(x.dtype)
                weight[:, start : start + self.window] += taper
        return total / weight  # (B, L, F)


def chained_length(window: int, num_windows: int, overlap: int) -> int:
    """Frames of `num_windows` chained windows of `window` frames sharing `overlap` frames."""
    return window + (num_windows - 1) * (window - overlap)


def chain_windows(
    sample: Callable, first: Motion, num_windows: int, overlap: int, blend: int = 0, guide: Optional[Tensor] = None
) -> LongMotion:
    """Extend `first` (B, N, F) by `num_windows - 1` windows, each generated with its first `overlap - blend`
    frames fixed to the frames so far; over the next `blend` frames the sequence crossfades (linear weights) from
    the frames so far into the new window's, hiding the step where known frames meet generated ones.
    `sample(known, known_mask)` returns a window; with a `guide` (B, >= result's length, F), a sequence the chain
    follows, `sample(known, known_mask, guide_window)` gets the guide's frames where the window lies.
    Result: (B, N + (num_windows - 1) * (N - overlap), F)."""
    batch, window, features = first.shape
    assert 0 < overlap < window, f"overlap must lie in (0, {window}), got {overlap}"
    assert 0 <= blend < overlap, f"blend must lie in [0, {overlap}), got {blend}"
    assert guide is None or guide.shape[1] >= chained_length(window, num_windows, overlap), "the guide is too short"
    sequence = first.clone()  # (B, L, F), grown window by window
    keep = torch.zeros(batch, window, dtype=torch.bool, device=first.device)  # (B, N)
    keep[:, : overlap - blend] = True
    weights = torch.linspace(1.0, 0.0, blend + 2, device=first.device, dtype=first.dtype)[1:-1, None]  # (blend, 1)
    for _ in range(num_windows - 1):
        known = torch.cat([sequence[:, -overlap:], first.new_zeros(batch, window - overlap, features)], dim=1)
        start = sequence.shape[1] - overlap
        new = sample(known, keep) if guide is None else sample(known, keep, guide[:, start : start + window])
        if blend:
            tail = sequence[:, -blend:]  # (B, blend, F): the old frames the new window also made
            sequence[:, -blend:] = weights * tail + (1 - weights) * new[:, overlap - blend : overlap]
        sequence = torch.cat([sequence, new[:, overlap:]], dim=1)
    return sequence

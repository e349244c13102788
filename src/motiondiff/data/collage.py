"""A collage of a dance: pieces of its training span, evenly spaced over it, joined in a random order.

Sampled from as a guide (`collage_strength`: each chained window starts from the collage's frames noised part of the
way, SDEdit), it gives a chain of windows a plan that visits the whole dance, which a chain of free windows, each
continuing the last frames, lacks (docs/dance3d.md: coverage of dances that rarely repeat themselves).
"""

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from motiondiff.core.checks import whole_number
from motiondiff.core.errors import UserError


@dataclass(frozen=True)
class CollagePlan:
    """How chains follow a collage: the strength (the share of the schedule its pieces are noised to) and the piece
    length in frames."""

    strength: float
    piece: int

    def guides(self, training: Tensor, count: int, frames: int, generator: torch.Generator) -> Tensor:
        """(count, frames, F): one collage of `training` (T, F) per chain, on the generator's device."""
        pieces = [collage(training, frames, self.piece, generator) for _ in range(count)]
        return torch.stack(pieces).to(generator.device)


def collage_plan(strength, piece, window: int, frames: int) -> CollagePlan:
    """The plan of `collage_strength` and `collage_piece` (None: the window length) for a training span of `frames`
    frames; UserError naming the key that is not usable."""
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 < strength <= 1:
        raise UserError(
            f"collage_strength={strength} must be a number in (0, 1] (the share of the noise schedule); try 0.3."
        )
    piece = window if piece is None else whole_number("collage_piece", piece)
    if piece > frames:
        raise UserError(f"collage_piece={piece} is longer than the {frames} training frames; use the window length.")
    return CollagePlan(float(strength), piece)


def refuse_for_text(strength, conditional: bool, run_dir) -> None:
    """UserError when collage_strength is given for a text-conditioned run (collages are made of one dance)."""
    if strength is not None and conditional:
        raise UserError(f"collage_strength={strength} needs a dance run; '{run_dir}' is a text run: drop it.")


def collage(training: Tensor, frames: int, piece: int, generator: torch.Generator) -> Tensor:
    """(frames, F): ceil(frames / piece) pieces of `piece` frames of `training` (T, F), their starts evenly spaced
    from the first frame to the last piece's (so every frame is in about frames / T pieces), in random order."""
    assert 1 <= piece <= len(training), (piece, len(training))
    count = math.ceil(frames / piece)
    starts = torch.linspace(0, len(training) - piece, count, dtype=torch.float64).round().long()  # (P,)
    order = torch.randperm(count, generator=generator, device=generator.device).cpu()
    pieces = [training[start : start + piece] for start in starts[order].tolist()]
    return torch.cat(pieces)[:frames]  # (frames, F)

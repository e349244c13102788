"""Long dances from a window model: chained windows of the EMA network, optionally following a guide (a collage)."""

import itertools
from typing import Optional

import torch

from motiondiff.core.types import LongMotion, Motion
from motiondiff.data.collage import CollagePlan
from motiondiff.diffusion.chaining import chain_windows
from motiondiff.diffusion.samplers import Sampler


def collage_record(module, sampler: Sampler, plan: CollagePlan) -> dict:
    """A collage plan as evaluations and generations record it, with the step of the sampler's grid where windows
    start (`MotionDiffusion.sdedit_start`)."""
    return {**vars(plan), "start": module.sdedit_start(sampler, plan.strength)}


def sample_chain(
    module,
    sampler: Sampler,
    generator: torch.Generator,
    count: int,
    overlap: int,
    blend: int,
    label: str,
    first: Optional[Motion] = None,
    batch: int = 1,
    guide: Optional[torch.Tensor] = None,
    strength: Optional[float] = None,
) -> LongMotion:
    """`count` chained windows (B, L, F) of `module` (a MotionDiffusion): `first` (B, N, F), or `batch` first windows
    sampled, each next window continuing the last `overlap` frames (`diffusion.chaining.chain_windows`, the last
    `blend` crossfaded). With a `guide` (B, >= L, F) and `strength`, every window it samples starts from its stretch
    of the guide noised that far (SDEdit). `label` names each window in the progress bar ("{number}", "{count}")."""
    assert (guide is None) == (strength is None), "give guide and strength together"
    window = module.data.window
    numbers = itertools.count(1 if first is None else 2)

    def from_guide(source) -> dict:  # module.sample's arguments that start a window from its stretch of the guide
        return {} if guide is None else {"source": source, "strength": strength}

    def labelled():
        return sampler.labelled(label.format(number=next(numbers), count=count))

    if first is None:
        with labelled():
            source = None if guide is None else guide[:, :window]  # (B, N, F): the guide's first window
            first = module.sample(batch, sampler, generator, **from_guide(source))  # (B, N, F)

    def continue_window(known, known_mask, source=None):
        with labelled():
            return module.sample(
                known.shape[0], sampler, generator, known=known, known_mask=known_mask, **from_guide(source)
            )

    return chain_windows(continue_window, first, count, overlap, blend, guide) if count > 1 else first

"""Long dances from a window model: windows of the EMA network chained one after another or sampled all at once,
optionally following a guide (a collage)."""

import itertools
from typing import Optional

import torch

from motiondiff.core.checks import whole_number
from motiondiff.core.errors import UserError
from motiondiff.core.types import LongMotion, Motion
from motiondiff.data.collage import CollagePlan
from motiondiff.diffusion.chaining import chain_windows, chained_length
from motiondiff.diffusion.samplers import Sampler

CHAIN_SAMPLINGS = ("joint", "sequential")  # how sample_chain makes a long dance (configs: chain_sampling)


def collage_record(module, sampler: Sampler, plan: CollagePlan) -> dict:
    """A collage plan as evaluations and generations record it, with the step of the sampler's grid where windows
    start (`MotionDiffusion.sdedit_start`)."""
    return {**vars(plan), "start": module.sdedit_start(sampler, plan.strength)}


def check_chain_sampling(mode) -> str:
    """`mode` if it is one of CHAIN_SAMPLINGS; a UserError naming them otherwise."""
    if mode not in CHAIN_SAMPLINGS:
        raise UserError(f"chain_sampling={mode!r} must be one of {', '.join(CHAIN_SAMPLINGS)}.")
    return mode


def check_chain(window: int, overlap, blend, mode) -> tuple:
    """(overlap, blend, mode) of a chain of `window`-frame windows, checked: overlap in [1, window), mode one of
    CHAIN_SAMPLINGS, and for sequential chains blend in [0, overlap) (joint ones have none: blend None)."""
    mode = check_chain_sampling(mode)
    overlap = whole_number("chain_overlap", overlap)
    if not overlap < window:
        raise UserError(f"chain_overlap={overlap} must lie between 1 and the window length {window} - 1; use 16.")
    if mode == "joint":
        return overlap, None, mode
    blend = whole_number("chain_blend", blend, minimum=0)
    if not blend < overlap:
        raise UserError(f"chain_blend={blend} must lie in [0, chain_overlap) = [0, {overlap}); use 8.")
    return overlap, blend, mode


def sample_chain(
    module,
    sampler: Sampler,
    generator: torch.Generator,
    count: int,
    overlap: int,
    blend: Optional[int],
    label: str,
    first: Optional[Motion] = None,
    batch: int = 1,
    guide: Optional[torch.Tensor] = None,
    strength: Optional[float] = None,
    mode: str = "joint",
) -> LongMotion:
    """`count` chained windows (B, L, F) of `module` (a MotionDiffusion) sharing `overlap` frames, starting with
    `first` (B, N, F) or with `batch` sampled windows. `mode` "sequential": each next window continues the last
    `overlap` frames (`diffusion.chaining.chain_windows`, the last `blend` crossfaded); "joint": the whole length is
    sampled at once, the windows blended at every step (`diffusion.chaining.WindowedNetwork`; `first` is kept by
    replacement, `blend` unused). With a `guide` (B, >= L, F) and `strength`, sampling starts from the guide noised
    that far (SDEdit). `label` names each window in the progress bar ("{number}", "{count}")."""
    assert (guide is None) == (strength is None), "give guide and strength together"
    window, length = module.data.window, chained_length(module.data.window, count, overlap)
    numbers = itertools.count(1 if first is None else 2)

    def from_guide(source) -> dict:  # module.sample's arguments that start from the guide's frames
        return {} if guide is None else {"source": source, "strength": strength}

    def labelled():
        return sampler.labelled(label.format(number=next(numbers), count=count))

    if check_chain_sampling(mode) == "joint" and count > 1:
        known = known_mask = None
        if first is not None:  # (B, L, F) holding the first window, (B, L) marking it
            batch = first.shape[0]
            known = torch.cat([first, first.new_zeros(batch, length - window, first.shape[2])], dim=1)
            known_mask = torch.zeros(batch, length, dtype=torch.bool, device=first.device)
            known_mask[:, :window] = True
        with sampler.labelled(label.format(number=f"1-{count}", count=count) + " at once"):
            source = None if guide is None else guide[:, :length]  # (B, L, F)
            return module.sample(
                batch, sampler, generator, length, known, known_mask, overlap=overlap, **from_guide(source)
            )  # (B, L, F)
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

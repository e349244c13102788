"""What every motion-text evaluator offers the evaluation protocols, and what it requires of a run's data.

An evaluator embeds motions (raw features in its representation, un-normalised, with their lengths)
and captions (dataset caption items) into one space. It states the data it was made for; a run of
other data is refused with one sentence before anything is generated.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Protocol

import torch

from motiondiff.core.errors import UserError
from motiondiff.core.types import Embeddings, Lengths, Motion
from motiondiff.data.info import TextMotionData

TRAIN_HINT = "train one with: python -m motiondiff.train experiment=evaluator dataset=<the run's dataset>"
NO_EVALUATOR = (
    "text runs are measured with a motion-text evaluator: give evaluator.run=<a trained evaluator's run directory> "
    f"(or evaluator=t2m | tmr | lab_tmr with its files); {TRAIN_HINT}."
)


@dataclass(frozen=True)
class Requirements:
    """The data an evaluator reads: its feature representation and width, and optionally one dataset."""

    evaluator: str  # how the evaluator is named in messages
    representation: str
    features: int
    dataset_id: Optional[str] = None  # a dataset fingerprint (data.info), when only that dataset fits
    source: Optional[str] = None  # the dataset folder it was made on, compared by name when there is no fingerprint
    hint: str = ""  # what to use instead
    made: str = "made"  # "trained" for evaluators trained by this framework

    def check(self, data: TextMotionData, run_dir) -> None:
        """UserError unless the run's data is what the evaluator reads."""
        problems = []
        if self.representation != data.representation:
            problems.append(f"feature representation {self.representation} vs {data.representation}")
        if self.features != data.features:
            problems.append(f"number of features {self.features} vs {data.features}")
        if self.dataset_id and data.dataset_id and self.dataset_id != data.dataset_id:
            problems.append(f"dataset {self.dataset_id} vs {data.dataset_id}")
        elif self.source and not self.dataset_id and Path(self.source).name != Path(data.source).name:
            problems.append(f"dataset {self.source} vs {data.source}")
        if problems:
            raise UserError(
                f"the evaluator {self.evaluator} was not {self.made} for the run '{run_dir}' ({'; '.join(problems)}); "
                f"{self.hint}"
            )


class MotionTextEvaluator(Protocol):
    """The interface of an evaluator as the protocols use it."""

    requirements: Requirements
    unit_length: int  # motion lengths are cut down to a multiple of this (Guo et al.: 4)
    max_frames: int  # motions are padded (or cut) to this many frames

    def embed_motions(self, raw: Motion, lengths: Lengths) -> Embeddings:
        """Un-normalised features of the run's representation with their lengths -> motion embeddings."""

    def embed_captions(self, items: list, cache_dir: Optional[Path] = None) -> Embeddings:
        """Dataset caption items (text.encoders.CaptionItem) -> text embeddings; cache_dir holds text caches."""

    def score_from_cosine(self, cosine: float) -> float:
        """The evaluator's text-motion score of a mean cosine similarity (TMR: cos / 2 + 1 / 2)."""

    def describe(self) -> dict:
        """What evaluation reports record: name, checkpoint and the like."""


def unit_lengths(lengths: torch.Tensor, unit: int, max_frames: int) -> torch.Tensor:
    """Lengths cut to the evaluator's unit and limit: min(length, max_frames) // unit * unit, at least one unit."""
    cut = torch.clamp(lengths, max=max_frames) // unit * unit  # (B,)
    if bool((cut < unit).any()):
        raise UserError(
            f"a motion shorter than {unit} frames cannot be embedded by this evaluator (unit length {unit})."
        )
    return cut


def padded_to(raw: torch.Tensor, lengths: torch.Tensor, frames: int) -> torch.Tensor:
    """(B, N, F) -> (B, frames, F): each motion's first `length` frames, zeros after (cut or padded)."""
    out = raw.new_zeros(raw.shape[0], frames, raw.shape[-1])  # (B, frames, F)
    keep = min(frames, raw.shape[1])
    valid = (torch.arange(keep, device=raw.device)[None] < lengths[:, None])[..., None]  # (B, keep, 1)
    out[:, :keep] = raw[:, :keep] * valid
    return out

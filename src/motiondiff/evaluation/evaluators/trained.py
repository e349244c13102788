"""A motion-text evaluator trained by this framework (`experiment=evaluator`), loaded from its run, and refused for
data it was not trained on.

`evaluator=trained evaluator.run=<its run directory or .ckpt>` (or the shorthand `evaluator=<run directory>`).
Its motions are the run's own features with a frame mask; its captions go through the text encoder it was
trained with (their embeddings are cached beside the dataset's).
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from motiondiff.core.errors import UserError
from motiondiff.core.types import Embeddings, Lengths, Motion
from motiondiff.data.info import TextMotionData
from motiondiff.evaluation.evaluators.base import NO_EVALUATOR, TRAIN_HINT, Requirements
from motiondiff.runs.directories import load_run_config, resolve_checkpoint
from motiondiff.runs.loading import load_module
from motiondiff.text.cache import cached_table, lookup_items
from motiondiff.training.contrastive_module import MotionTextContrastive

TEXT_BATCH = 256  # captions embedded per call


@dataclass
class TrainedEvaluator:
    """A trained evaluator: its run directory, checkpoint, composed config and module (eval mode)."""

    run_dir: Path
    checkpoint: Path
    config: DictConfig
    module: MotionTextContrastive
    unit_length: int = 1
    text_encoder: object = field(default=None, repr=False)  # built on first use

    @property
    def max_frames(self) -> int:
        return int(self.module.network.max_frames)

    @property
    def requirements(self) -> Requirements:
        data = self.module.description
        return Requirements(
            f"'{self.run_dir}'",
            data.representation,
            data.features,
            data.dataset_id,
            data.source,
            f"use an evaluator trained on the run's dataset, or {TRAIN_HINT}.",
            made="trained",
        )

    def embed_motions(self, raw: Motion, lengths: Lengths) -> Embeddings:
        mask = torch.arange(raw.shape[1], device=raw.device)[None] < lengths.to(raw.device)[:, None]  # (B, N)
        return self.module.embed_motion(raw, mask)  # (B, D)

    def embed_captions(self, items: list, cache_dir: Optional[Path] = None) -> Embeddings:
        if self.text_encoder is None:
            self.text_encoder = instantiate(self.config.text_encoder)
        table = cached_table(self.text_encoder, items, cache_dir)
        latents = []
        for start in range(0, len(items), TEXT_BATCH):
            chunk = lookup_items(table, self.text_encoder, items[start : start + TEXT_BATCH])
            latents.append(self.module.embed_text(chunk.tokens, chunk.token_mask).cpu())
        return torch.cat(latents)  # (N, D)

    @staticmethod
    def score_from_cosine(cosine: float) -> float:
        """The text-motion score is the mean cosine itself."""
        return cosine

    def describe(self) -> dict:
        return {"name": "trained", "checkpoint": str(self.checkpoint), "text_encoder": self.module.data.text_encoder}


def load_trained_evaluator(spec: Optional[str], device: str = "cpu") -> TrainedEvaluator:
    """The evaluator at `spec`: an evaluator run directory (its last.ckpt) or a checkpoint file."""
    if not spec:
        raise UserError(NO_EVALUATOR)
    path = Path(str(spec))
    checkpoint_given = path.suffix == ".ckpt"
    run_dir, checkpoint = resolve_checkpoint(
        None if checkpoint_given else str(path), str(path) if checkpoint_given else None
    )
    config = load_run_config(run_dir)
    module = load_module(config, checkpoint, device)
    if not isinstance(module, MotionTextContrastive):
        raise UserError(f"'{run_dir}' is a {type(module).__name__} run, not a motion-text evaluator; {TRAIN_HINT}.")
    return TrainedEvaluator(run_dir, checkpoint, config, module)


def load(run: Optional[str] = None, device: str = "cpu") -> TrainedEvaluator:
    """`evaluator=trained`: the evaluator trained in run `run` (config group entry point)."""
    return load_trained_evaluator(run, device)


def check_compatible(evaluator: TrainedEvaluator, data: TextMotionData, run_dir) -> None:
    """UserError unless the evaluator was trained on the run's dataset and feature representation."""
    evaluator.requirements.check(data, run_dir)

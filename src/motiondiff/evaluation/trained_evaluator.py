"""Loading a motion-text evaluator trained by this framework, and refusing to use it on data it was not trained for."""

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from omegaconf import DictConfig

from motiondiff.core.errors import UserError
from motiondiff.data.info import TextMotionData
from motiondiff.runs.directories import load_run_config, resolve_checkpoint
from motiondiff.runs.loading import load_module
from motiondiff.training.contrastive_module import MotionTextContrastive

TRAIN_HINT = "train one with: python -m motiondiff.train experiment=evaluator dataset=<the run's dataset>"


@dataclass
class TrainedEvaluator:
    """A trained evaluator: its run directory, checkpoint, composed config and module (eval mode)."""

    run_dir: Path
    checkpoint: Path
    config: DictConfig
    module: MotionTextContrastive


def load_trained_evaluator(spec: Optional[str], device: str = "cpu") -> TrainedEvaluator:
    """The evaluator at `spec`: an evaluator run directory (its last.ckpt) or a checkpoint file."""
    if not spec:
        raise UserError(
            f"text runs are measured with a trained motion-text evaluator: give evaluator=<its run directory>; "
            f"{TRAIN_HINT}."
        )
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


def check_compatible(evaluator: TrainedEvaluator, data: TextMotionData, run_dir) -> None:
    """UserError unless the evaluator was trained on the run's dataset and feature representation."""
    trained_for = evaluator.module.description
    problems = []
    for key, what in (("representation", "feature representation"), ("features", "number of features")):
        if getattr(trained_for, key) != getattr(data, key):
            problems.append(f"{what} {getattr(trained_for, key)} vs {getattr(data, key)}")
    if trained_for.dataset_id and data.dataset_id:
        if trained_for.dataset_id != data.dataset_id:
            problems.append(f"dataset {trained_for.dataset_id} vs {data.dataset_id}")
    elif Path(trained_for.source).name != Path(data.source).name:
        problems.append(f"dataset {trained_for.source} vs {data.source}")
    if problems:
        raise UserError(
            f"the evaluator '{evaluator.run_dir}' was not trained for the run '{run_dir}' ({'; '.join(problems)}); "
            f"use an evaluator trained on the run's dataset, or {TRAIN_HINT}."
        )

"""Loading a trained motion-text evaluator, and refusing to use it on data it was not trained for."""

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from omegaconf import DictConfig

from motiondiff.errors import UserError
from motiondiff.runs import load_module, load_run_config, resolve_checkpoint

TRAIN_HINT = "train one with: python -m motiondiff.train experiment=evaluator dataset=<the run's dataset>"


@dataclass
class EvaluatorRun:
    """A trained evaluator: its run directory, checkpoint, composed config and module (eval mode)."""

    run_dir: Path
    checkpoint: Path
    config: DictConfig
    module: object  # MotionTextEvaluator


def load_evaluator(spec: Optional[str], device: str = "cpu") -> EvaluatorRun:
    """The evaluator at `spec`: an evaluator run directory (its last.ckpt) or a checkpoint file."""
    from motiondiff.training.evaluator_module import MotionTextEvaluator

    if not spec:
        raise UserError(f"text runs are measured with a trained motion-text evaluator: give evaluator=<its run directory>; {TRAIN_HINT}.")
    path = Path(str(spec))
    run_dir, checkpoint = resolve_checkpoint(None, str(path), "last") if path.suffix == ".ckpt" else resolve_checkpoint(str(path), None, "last")
    config = load_run_config(run_dir)
    module = load_module(config, checkpoint, device)
    if not isinstance(module, MotionTextEvaluator):
        raise UserError(f"'{run_dir}' is a {type(module).__name__} run, not a motion-text evaluator; {TRAIN_HINT}.")
    return EvaluatorRun(run_dir, checkpoint, config, module)


def check_compatible(evaluator: EvaluatorRun, data_info: dict, run_dir) -> None:
    """UserError unless the evaluator was trained on the run's dataset and feature representation."""
    trained_for = evaluator.module.description
    problems = []
    for key, what in (("representation", "feature representation"), ("features", "number of features")):
        if trained_for.get(key) != data_info.get(key):
            problems.append(f"{what} {trained_for.get(key)} vs {data_info.get(key)}")
    if trained_for.get("dataset_id") and data_info.get("dataset_id"):
        if trained_for["dataset_id"] != data_info["dataset_id"]:
            problems.append(f"dataset {trained_for['dataset_id']} vs {data_info['dataset_id']}")
    elif Path(str(trained_for.get("source"))).name != Path(str(data_info.get("source"))).name:
        problems.append(f"dataset {trained_for.get('source')} vs {data_info.get('source')}")
    if problems:
        raise UserError(
            f"the evaluator '{evaluator.run_dir}' was not trained for the run '{run_dir}' ({'; '.join(problems)}); "
            f"use an evaluator trained on the run's dataset, or {TRAIN_HINT}."
        )

"""Single-dance evaluation: the single-motion measures of each replication's generated windows.

Per replication r (seed + r) the run generates `num_samples` windows with its sampler; they are
measured against the training span of the dance (motiondiff.metrics.single_motion). The
`validation` row (the reference, evaluation.report.SINGLE_DANCE) measures the held-out end of the same
dance the same way: what real, unseen motion of this dancer scores. It is other motion than the training
span, so its coverage is low: a reference for the other measures, not a coverage to beat.
"""

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from motiondiff.core.checks import whole_number
from motiondiff.metrics.single_motion import COVERAGE_THRESHOLD, resolve_windows, single_motion_report


def evaluate_dance(run, cfg: DictConfig) -> tuple:
    """Rows {"validation": [...], "generated": [...]} of per-replication measures, and the settings used."""
    num_samples = whole_number("num_samples", cfg.num_samples, minimum=2, why="inter-clip diversity needs pairs")
    datamodule = instantiate(run.config.dataset)
    datamodule.setup("fit")
    info = run.module.data
    training = datamodule.train_set.features.numpy()  # (T, F) normalised training span
    validation = [datamodule.val_set[i]["motion"].numpy() for i in range(len(datamodule.val_set))]  # V x (N, F)
    rows = {"validation": [], "generated": []}
    for replication in range(cfg.replications):
        generator = torch.Generator(device=run.module.device).manual_seed(cfg.seed + replication)
        samples = run.module.sample(num_samples, run.sampler, generator).float().cpu().numpy()  # (K, N, F)
        rows["generated"].append(as_floats(single_motion_report(samples, training, info)))
        rows["validation"].append(as_floats(single_motion_report(validation, training, info)))
    settings = {
        "protocol": "single_dance",
        "num_samples": num_samples,
        "training_frames": len(training),
        "validation_windows": len(validation),
        "windows": resolve_windows(list(samples), info),
        "coverage_threshold": COVERAGE_THRESHOLD,
    }
    return rows, settings


def as_floats(report: dict) -> dict:
    """The report with its bool (copies_training) as 0/1, so replications average to a fraction."""
    return {key: float(value) for key, value in report.items()}

"""Evaluate a finished run: `python -m motiondiff.evaluate run_dir=outputs/<run> [sampler=ddim]`.

For now (dance runs) it reports physical sanity against the training windows: bone-length
error, jitter (mean acceleration, generated / training) and how close samples come to
the training windows (a copy check). The full metric suite comes with the evaluation issue.
"""

import json
import logging
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from motiondiff.cli import hydra_entry_point
from motiondiff.errors import UserError
from motiondiff.metrics.skeleton import bone_length_error, mean_acceleration, nearest_window_distance
from motiondiff.runs import load_trained_run

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    """Generate `num_samples` windows and compare them with the run's training windows."""
    run = load_trained_run(cfg)
    module, sampler = run.module, run.sampler
    if module.conditional:
        raise UserError(
            f"'{run.run_dir}' is a text-to-motion run; this evaluate.py measures dance runs only "
            "(the text-motion metrics need a trained motion-text evaluator)."
        )
    datamodule = instantiate(run.config.dataset)
    datamodule.setup("fit")
    train_windows = torch.stack([item["motion"] for item in datamodule.train_set])  # (W, N, F) normalised
    generator = torch.Generator(device=module.device).manual_seed(cfg.seed)
    samples = module.sample(cfg.num_samples, sampler, generator).float().cpu()  # (K, N, F) normalised
    generated, training = module.to_keypoints(samples), module.to_keypoints(train_windows)
    info = module.data_info
    metrics = {
        "bone_length_error": bone_length_error(generated, info["bone_lengths"], info["parents"]),
        "jitter_ratio": mean_acceleration(generated) / mean_acceleration(training),
        "nn_distance_to_training": float(nearest_window_distance(samples.numpy(), train_windows.numpy()).mean()),
        "val_nn_distance_to_training": float(
            nearest_window_distance(torch.stack([v["motion"] for v in datamodule.val_set]).numpy(), train_windows.numpy()).mean()
        ),
    }
    record = {"run_dir": str(run.run_dir), "checkpoint": str(run.checkpoint), "num_samples": cfg.num_samples, "seed": cfg.seed,
              "sampler": {"name": type(sampler).__name__, **vars(sampler)}, "metrics": metrics}
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(record, indent=2))
    for name, value in metrics.items():
        print(f"{name:28s} {value:.4f}")
    return record


main = hydra_entry_point("evaluate", run)

if __name__ == "__main__":
    main()

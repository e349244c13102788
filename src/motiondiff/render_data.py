"""Render the training data the way samples are rendered, to compare by eye:
`python -m motiondiff.render_data [experiment=dance2d] [dataset.source=...]`."""

import logging
from pathlib import Path

import hydra
import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig

from motiondiff.errors import exit_on_user_error
from motiondiff.generation import render_samples
from motiondiff.runs import register_resolvers
from motiondiff.train import CONFIG_DIR

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> Path:
    """Write the whole sequence and a grid of evenly spaced training windows to a new folder."""
    datamodule = instantiate(cfg.dataset)
    datamodule.setup("fit")
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sequence = datamodule.sequence.keypoints  # (T, J, 2)
    np.save(out_dir / "sequence.npy", sequence)
    starts = datamodule.train_set.starts
    picks = [starts[i] for i in np.linspace(0, len(starts) - 1, num=min(8, len(starts))).astype(int)]
    windows = np.stack([sequence[s : s + datamodule.window] for s in picks])  # (K, N, J, 2)
    np.save(out_dir / "windows.npy", windows)
    render_samples(out_dir, windows, datamodule.info, out_dir / "sequence.npy", long_title="training sequence")
    log.info("Rendered the training data to %s", out_dir)
    return out_dir


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="render_data")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    run(cfg)


register_resolvers()

if __name__ == "__main__":
    main()

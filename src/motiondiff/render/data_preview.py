"""Render the training data the way samples are rendered, to compare by eye:
`python -m motiondiff.render_data [experiment=dance2d] [dataset.source=...]`."""

import logging
from pathlib import Path

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig

from motiondiff.render.samples import render_samples

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
    render_samples(out_dir, windows, datamodule.info, sequence, long_name="sequence", long_title="training sequence")
    log.info("Rendered the training data to %s", out_dir)
    return out_dir

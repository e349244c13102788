"""Sample from a trained module and write the results: .npy in original coordinates and .mp4 videos."""

import itertools
import json
from pathlib import Path

import numpy as np
import torch

from motiondiff.core.checks import whole_number
from motiondiff.core.errors import UserError
from motiondiff.diffusion.chaining import chain_windows
from motiondiff.diffusion.samplers import Sampler
from motiondiff.render.samples import render_samples
from motiondiff.training.diffusion_module import MotionDiffusion

SAMPLES_FILE = "samples.npy"
LONG_FILE = "long_dance.npy"  # the chained windows


def generate_and_save(
    module: MotionDiffusion,
    sampler: Sampler,
    out_dir: Path,
    num_samples: int = 8,
    seed: int = 0,
    chain_windows_count: int = 0,
    chain_overlap: int = 16,
    render: bool = True,
) -> dict:
    """Write samples.npy (K, N, J, D), sample_XX.mp4, grid.mp4 and optionally a chained long dance."""
    num_samples = whole_number("num_samples", num_samples)
    out_dir = Path(out_dir)
    if (out_dir / SAMPLES_FILE).exists():
        raise UserError(f"'{out_dir}' already holds generated samples; generations are never overwritten.")
    out_dir.mkdir(parents=True, exist_ok=True)
    info = module.data
    generator = torch.Generator(device=module.device).manual_seed(seed)
    with sampler.labelled(f"{num_samples} windows of {info.window} frames"):
        samples = module.sample(num_samples, sampler, generator)  # (K, N, F)
    keypoints = module.to_keypoints(samples)  # (K, N, J, D)
    written = {"samples": out_dir / SAMPLES_FILE}
    np.save(written["samples"], keypoints)
    long = None
    if chain_windows_count > 1:
        if not 0 < chain_overlap < info.window:
            raise UserError(
                f"chain_overlap={chain_overlap} must lie between 1 and the window length {info.window} - 1."
            )

        numbers = itertools.count(2)  # window 1 of the chain is the first sample

        def continue_window(known, known_mask):
            with sampler.labelled(f"chained window {next(numbers)}/{chain_windows_count} (long dance)"):
                return module.sample(known.shape[0], sampler, generator, known=known, known_mask=known_mask)

        long = module.to_keypoints(chain_windows(continue_window, samples[:1], chain_windows_count, chain_overlap))[0]
        written["long"] = out_dir / LONG_FILE
        np.save(written["long"], long)  # (L, J, D)
    if render:
        long_title = f"{chain_windows_count} chained windows"
        written.update(render_samples(out_dir, keypoints, info, long, long_title=long_title))
    summary = {
        "num_samples": num_samples,
        "seed": seed,
        "sampler": sampler.describe(),
        **info.skeleton_record(),
        "files": {k: str(v) for k, v in written.items()},
    }
    (out_dir / "generation.json").write_text(json.dumps(summary, indent=2, default=str))
    return written

"""Sample from a trained module and write the results: .npy in original coordinates and .mp4 videos."""

import json
from pathlib import Path

import numpy as np
import torch

from motiondiff.diffusion.chaining import chain_windows
from motiondiff.diffusion.samplers import Sampler
from motiondiff.errors import UserError
from motiondiff.training.module import MotionDiffusion

SAMPLES_FILE = "samples.npy"


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
    if num_samples < 1:
        raise UserError(f"num_samples={num_samples} must be at least 1.")
    out_dir = Path(out_dir)
    if (out_dir / SAMPLES_FILE).exists():
        raise UserError(f"'{out_dir}' already holds generated samples; generations are never overwritten.")
    out_dir.mkdir(parents=True, exist_ok=True)
    info = module.data_info
    generator = torch.Generator(device=module.device).manual_seed(seed)
    samples = module.sample(num_samples, sampler, generator)  # (K, N, F)
    keypoints = module.to_keypoints(samples)  # (K, N, J, D)
    written = {"samples": out_dir / SAMPLES_FILE}
    np.save(written["samples"], keypoints)
    long = None
    if chain_windows_count > 1:
        if not 0 < chain_overlap < info["window"]:
            raise UserError(f"chain_overlap={chain_overlap} must lie between 1 and the window length {info['window']} - 1.")

        def continue_window(known, known_mask):
            return module.sample(known.shape[0], sampler, generator, known=known, known_mask=known_mask)

        long = module.to_keypoints(chain_windows(continue_window, samples[:1], chain_windows_count, chain_overlap))[0]
        written["long"] = out_dir / "long_dance.npy"
        np.save(written["long"], long)  # (L, J, D)
    if render:
        written.update(render_samples(out_dir, keypoints, info, long))
    (out_dir / "generation.json").write_text(
        json.dumps(
            {"num_samples": num_samples, "seed": seed, "sampler": type(sampler).__name__, **vars(sampler),
             "files": {k: str(v) for k, v in written.items()}},
            indent=2,
            default=str,
        )
    )
    return written


def render_samples(
    out_dir: Path, keypoints: np.ndarray, info: dict, long=None, long_name: str = "long_dance", long_title="chained windows"
) -> dict:
    """One video per sample (K, N, J, D), a grid of all, and <long_name>.mp4 of a long sequence (L, J, D) if given."""
    from motiondiff.render.skeleton_video import common_bounds, write_grid_video, write_skeleton_video

    parents, names, fps = info["parents"], info["joint_names"], info["fps"]
    bounds = common_bounds(list(keypoints))
    written = {}
    for index, sample in enumerate(keypoints):
        path = out_dir / f"sample_{index:02d}.mp4"
        write_skeleton_video(path, sample, parents, fps, bounds=bounds, title=f"sample {index}", names=names)
        written[f"video_{index:02d}"] = path
    written["grid"] = out_dir / "grid.mp4"
    write_grid_video(written["grid"], list(keypoints), parents, fps, titles=[str(i) for i in range(len(keypoints))], names=names)
    if long is not None:
        written["long_video"] = out_dir / f"{long_name}.mp4"
        write_skeleton_video(written["long_video"], long, parents, fps, title=long_title, names=names)
    return written


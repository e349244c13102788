"""Sample from a trained module and write the results: .npy in original coordinates and .mp4 videos."""

import json
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from motiondiff.core.checks import whole_number
from motiondiff.core.errors import UserError
from motiondiff.data.info import RotationDanceData
from motiondiff.diffusion.chaining import chained_length
from motiondiff.diffusion.samplers import Sampler
from motiondiff.export.dance import write_dance_bvh
from motiondiff.render.samples import render_samples
from motiondiff.training.chained_sampling import check_chain, check_chain_sampling, collage_record, sample_chain
from motiondiff.training.devices import dtype_name
from motiondiff.training.diffusion_module import MotionDiffusion

SAMPLES_FILE = "samples.npy"
LONG_FILE = "long_dance.npy"  # the chained windows
CHAIN_BLEND = 8  # overlap frames crossfaded from one chained window into the next (configs/generate.yaml)


def generate_and_save(
    module: MotionDiffusion,
    sampler: Sampler,
    out_dir: Path,
    num_samples: int = 8,
    seed: int = 0,
    chain_windows_count: int = 0,
    chain_overlap: int = 16,
    render: bool = True,
    chain_blend: Optional[int] = None,
    foot_lock: bool = True,
    foot_ik="auto",
    collage: Optional[tuple] = None,
    chain_sampling: str = "joint",
) -> dict:
    """Write samples.npy (K, N, J, D), sample_XX.mp4, grid.mp4, optionally a chained long dance, and for the 3D
    dance sample_XX.bvh and long_dance.bvh on the source clip's skeleton (feet in contact locked: the root by
    `foot_lock`, the legs by IK with `foot_ik`: true, false or auto). The long dance's windows are sampled as
    `chain_sampling` says (joint or sequential: `sample_chain`); with `collage` (the training span's normalised
    features (T, F), a CollagePlan) it follows a shuffled collage of the dance (data.collage)."""
    num_samples = whole_number("num_samples", num_samples)
    info = module.data
    pin = isinstance(info, RotationDanceData) and info.pins(foot_ik)  # a bad foot_ik stops here, before sampling
    if chain_windows_count > 1:  # the chain's settings, checked before any sampling
        if chain_blend is None and isinstance(chain_overlap, int):  # generate's default, where the overlap leaves room
            chain_blend = min(CHAIN_BLEND, chain_overlap - 1)
        chain_overlap, chain_blend, chain_sampling = check_chain(
            info.window, chain_overlap, chain_blend, chain_sampling
        )
    else:
        chain_sampling = check_chain_sampling(chain_sampling)
    out_dir = Path(out_dir)
    if (out_dir / SAMPLES_FILE).exists():
        raise UserError(f"'{out_dir}' already holds generated samples; generations are never overwritten.")
    out_dir.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator(device=module.device).manual_seed(seed)
    with sampler.labelled(f"{num_samples} windows of {info.window} frames"):
        samples = module.sample(num_samples, sampler, generator)  # (K, N, F)
    keypoints, raws = finished(module, samples, foot_lock, pin)  # (K, N, J, D); 3D dance: (K, N, F) to write as BVH
    written = {"samples": out_dir / SAMPLES_FILE}
    np.save(written["samples"], keypoints)
    for index, raw in enumerate([] if raws is None else raws):
        written[f"bvh_{index:02d}"] = write_dance_bvh(out_dir / f"sample_{index:02d}.bvh", info, raw)
    long = None
    if chain_windows_count > 1:
        first, guide, strength = samples[:1], None, None  # the first window: the first sample, or one of the collage
        if collage is not None:
            length = chained_length(info.window, chain_windows_count, chain_overlap)
            first, guide, strength = None, collage[1].guides(collage[0], 1, length, generator), collage[1].strength
        label = "long dance: chained window {number}/{count}"
        count, overlap, blend = chain_windows_count, chain_overlap, chain_blend
        chained = sample_chain(
            module,
            sampler,
            generator,
            count,
            overlap,
            blend,
            label,
            first,
            guide=guide,
            strength=strength,
            mode=chain_sampling,
        )
        long, long_raws = finished(module, chained, foot_lock, pin)
        long = long[0]
        written["long"] = out_dir / LONG_FILE
        np.save(written["long"], long)  # (L, J, D)
        if long_raws is not None:
            written["long_bvh"] = write_dance_bvh(out_dir / "long_dance.bvh", info, long_raws[0])
    if render:
        long_title = f"{chain_windows_count} chained windows"
        written.update(render_samples(out_dir, keypoints, info, long, long_title=long_title))
    summary = {
        "num_samples": num_samples,
        "seed": seed,
        "sampler": sampler.describe(),
        "precision": dtype_name(module.sampling_dtype),
        "chain": {
            "windows": chain_windows_count,
            "overlap": chain_overlap,
            "blend": chain_blend,  # None: joint windows are blended at every step instead
            "sampling": chain_sampling,
        },
        "collage": None if collage is None else collage_record(module, sampler, collage[1]),
        **({"foot_lock": foot_lock, "foot_ik": pin} if isinstance(info, RotationDanceData) else {}),
        **info.skeleton_record(),
        "files": {k: str(v) for k, v in written.items()},
    }
    (out_dir / "generation.json").write_text(json.dumps(summary, indent=2, default=str))
    return written


def finished(module: MotionDiffusion, features: torch.Tensor, foot_lock: bool, pin: bool) -> tuple:
    """(positions (K, N, J, D) float32, None) of normalised features (K, N, F); for the 3D dance, (positions, the
    denormalised features (K, N, F) float64 to write as BVH), feet in contact locked by the root (`foot_lock`)
    and the legs (`pin`: the foot_ik setting as `RotationDanceData.pins` resolves it)."""
    info = module.data
    if not isinstance(info, RotationDanceData):
        return module.to_keypoints(features), None
    raws = module.normalizer.denormalize(features.float()).cpu().double().numpy()  # (K, N, F)
    raws = np.stack([info.clean_feet(raw, foot_lock, pin) for raw in raws])
    return info.to_positions(torch.from_numpy(raws)).numpy().astype(np.float32), raws

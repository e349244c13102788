"""Edit a motion with a finished run: keep part of a source motion and generate the rest.

`python -m motiondiff.edit run_dir=<run> source=<motion> edit=<mode> [prompt=...] [length=...]`
writes `num_samples` edits as `generate` writes samples (sample_XX.npy, sample_XX.mp4, grid.mp4,
generation.json with the mode, what was kept, the source, seed, sampler, prompt and the skeleton),
the source as the run sees it (source_motion.npy) and source.json (the run and checkpoint).
Results longer than the model makes at once (dance: a window; text: max_frames) are made window by window
(`chain_overlap` frames shared).
"""

import json
import logging
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig

from motiondiff.core.checks import whole_number
from motiondiff.core.errors import UserError, refuse_existing_outputs
from motiondiff.data.info import KeypointData
from motiondiff.diffusion.chaining import sample_in_windows
from motiondiff.diffusion.denoiser import check_guidance_weight
from motiondiff.diffusion.samplers import Sampler
from motiondiff.editing.masks import check_editable
from motiondiff.editing.modes import EditPlan, plan_edit
from motiondiff.editing.sources import GENERATION_FILE, load_source
from motiondiff.editing.timeline import run_timeline
from motiondiff.generation.prompts import read_prompts, warn_unfamiliar_prompts
from motiondiff.render.samples import render_samples, render_text_samples
from motiondiff.report.page import write_report
from motiondiff.runs.loading import TrainedRun, load_trained_run
from motiondiff.runs.provenance import write_provenance
from motiondiff.training.diffusion_module import MotionDiffusion

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    """Load the run and the source, plan the edit, sample `num_samples` edits and write them to the output folder."""
    out_dir = Path(cfg.paths.output_dir)
    refuse_existing_outputs(out_dir, [GENERATION_FILE], "edits")
    if cfg.edit.mode == "timeline":  # prompts with durations, no source: editing/timeline.py writes its own outputs
        return run_timeline(cfg)
    if cfg.source in (None, ""):
        raise UserError("say what to edit: source=<a .bvh, a .npy motion or a generation folder>.")
    if cfg.render not in (True, False):
        raise UserError(f"render={cfg.render} is not an option of edit; use render=true or render=false.")
    run = load_trained_run(cfg)
    module = run.module
    check_editable(module.data)
    cond, weight = condition(run, cfg.prompt, cfg.guidance_weight, whole_number("num_samples", cfg.num_samples))
    source = load_source(cfg.source, module, run.config.dataset, cfg.source_sample, cfg.source_up_axis)
    plan = plan_edit(cfg.edit, source.features, module.data, cfg.length)
    sampler = run.sampler.with_resample(cfg.edit.resample)
    generator = torch.Generator(device=module.device).manual_seed(cfg.seed)
    with sampler.labelled(f"{cfg.num_samples} {plan.mode} edits of {plan.frames} frames"):
        features = sample_edits(module, sampler, plan, cfg.num_samples, generator, cond, weight, cfg.chain_overlap)
    motions = module.to_keypoints(features)  # (K, N, J, D)
    source_positions = module.to_keypoints(source.features[None])[0]  # (T, J, D)
    written = write_edits(out_dir, module, plan, motions, source_positions, cfg.prompt, bool(cfg.render))
    info = module.data
    summary = {
        "mode": plan.mode,
        "edit": plan.summary(),
        "source": {"path": str(cfg.source), "form": source.form, "frames": source.frames, "sample": cfg.source_sample},
        "seed": cfg.seed,
        "sampler": sampler.describe(),
        "prompt": cfg.prompt,
        "guidance_weight": weight,
        "samples": sample_records(module, plan, len(motions), cfg.prompt),
        **info.skeleton_record(),
        "files": {key: str(path) for key, path in written.items()},
    }
    (out_dir / GENERATION_FILE).write_text(json.dumps(summary, indent=2, default=str))
    write_provenance(out_dir, run)
    written["report"] = write_report(out_dir)
    log.info("Wrote %d %s edits to %s", len(motions), plan.mode, out_dir)
    return written


def condition(run: TrainedRun, prompt: Optional[str], guidance_weight, num_samples: int) -> tuple:
    """(the network's condition for `num_samples` samples, the guidance weight): a prompt's, or the null condition."""
    module = run.module
    if not module.conditional:
        if prompt is not None or guidance_weight is not None:
            raise UserError(f"'{run.run_dir}' is an unconditional model (trained without text); drop prompt/guidance.")
        return None, None
    if prompt is None:
        if guidance_weight is not None:
            raise UserError("guidance_weight steers towards a prompt; give prompt=... or drop guidance_weight.")
        return null_condition(num_samples, module.data.text_dim, module.device), 1.0
    text = read_prompts(prompt, None)[0][0]
    encoder = instantiate(run.config.text_encoder)
    if encoder.name != module.data.text_encoder:
        raise UserError(f"text encoder '{encoder.name}' differs from the run's ('{module.data.text_encoder}').")
    warn_unfamiliar_prompts([text], module.data)
    weight = module.guidance_weight if guidance_weight is None else check_guidance_weight(guidance_weight)
    return encoder.encode([text] * num_samples).to(module.device).as_cond(), weight


def null_condition(batch: int, text_dim: int, device) -> dict:
    """The dropped condition for every sample (what the network learned without text): no prompt."""
    return {
        "text_pooled": torch.zeros(batch, text_dim, device=device),
        "text_tokens": torch.zeros(batch, 0, text_dim, device=device),
        "text_mask": torch.zeros(batch, 0, dtype=torch.bool, device=device),
        "drop": torch.ones(batch, dtype=torch.bool, device=device),
    }


def sample_edits(
    module: MotionDiffusion,
    sampler: Sampler,
    plan: EditPlan,
    num_samples: int,
    generator: torch.Generator,
    cond: Optional[dict] = None,
    guidance_weight: Optional[float] = None,
    overlap: int = 16,
) -> torch.Tensor:
    """`num_samples` normalised edits (K, N, F) that hold the plan's known values where it keeps them; an edit longer
    than the model makes at once (dance: its window; text: max_frames) is made window by window."""
    known = plan.known.to(module.device).expand(num_samples, -1, -1)  # (K, N, F)
    keep = plan.keep.to(module.device).expand(num_samples, -1, -1)  # (K, N, F)
    dance = isinstance(module.data, KeypointData)
    window = module.data.window if dance else module.data.max_frames

    def sample(known_part, keep_part):
        frames = known_part.shape[1]
        return module.sample(
            num_samples, sampler, generator, frames, known_part, keep_part, cond=cond, guidance_weight=guidance_weight
        )

    if not dance and plan.frames <= window:
        return sample(known, keep)
    if plan.frames <= window:  # a shorter dance edit: a whole window, its extra frames generated freely and cut off
        pad = window - plan.frames
        return sample(F.pad(known, (0, 0, 0, pad)), F.pad(keep, (0, 0, 0, pad)))[:, : plan.frames]
    if not 0 < overlap < window:
        raise UserError(f"chain_overlap={overlap} must lie between 1 and the model's window of {window} frames - 1.")
    return sample_in_windows(sample, known.clone(), keep.clone(), window, overlap, backward=plan.mode == "suffix")


def write_edits(
    out_dir: Path, module: MotionDiffusion, plan: EditPlan, motions: np.ndarray, source, prompt, render: bool
) -> dict:
    """sample_XX.npy (N, J, D) per edit, source_motion.npy (T, J, D) and, with `render`, the videos."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {"source": out_dir / "source_motion.npy"}
    np.save(written["source"], source)
    for index, motion in enumerate(motions):
        written[f"sample_{index:02d}"] = out_dir / f"sample_{index:02d}.npy"
        np.save(written[f"sample_{index:02d}"], motion)
    if render and isinstance(module.data, KeypointData):
        written.update(render_samples(out_dir, motions, module.data))
    elif render:
        kept = ", ".join(f"{start}-{end - 1}" for start, end in plan.kept_frames())
        caption = f"{plan.mode}: kept frames {kept}" + (f" · {prompt}" if prompt else "")
        written.update(render_text_samples(out_dir, list(motions), [caption] * len(motions), module.data))
    return written


def sample_records(module: MotionDiffusion, plan: EditPlan, count: int, prompt: Optional[str]) -> list:
    """generation.json's samples, as generate writes them (text: `joints`, which export reads; dance: `keypoints`)."""
    key = "keypoints" if isinstance(module.data, KeypointData) else "joints"
    return [{"prompt": prompt or "", "length": plan.frames, key: f"sample_{i:02d}.npy"} for i in range(count)]

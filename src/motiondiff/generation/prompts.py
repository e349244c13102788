"""Text-to-motion generation: prompts -> joint positions (.npy) and 3D stick-figure videos.

Each prompt gets `num_samples` motions; lengths come from `length` (frames) or, when not
given, are drawn from the training set's length distribution. Everything is seeded.
"""

import json
import logging
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from motiondiff.core.checks import whole_number
from motiondiff.core.errors import UserError, require_file
from motiondiff.data.info import TextMotionData
from motiondiff.data.text_motion import training_vocabulary
from motiondiff.diffusion.samplers import Sampler
from motiondiff.render.samples import render_text_samples
from motiondiff.text.encoders import TextEncoder
from motiondiff.text.vocabulary import prompt_warning
from motiondiff.training.devices import dtype_name
from motiondiff.training.diffusion_module import MotionDiffusion

log = logging.getLogger(__name__)

SUMMARY_FILE = "generation.json"


def read_prompts(prompt: Optional[str], prompts_file: Optional[str]) -> list:
    """[(text, length or None)] from `prompt` and/or a file of lines `text` or `text#frames`."""
    prompts = [(prompt, None)] if prompt is not None else []
    if prompts_file:
        require_file(prompts_file, "prompts file (prompts_file)", "one prompt per line, optionally 'text#frames'")
        for number, line in enumerate(Path(prompts_file).read_text().splitlines(), 1):
            if not line.strip():
                continue
            text, _, frames = line.partition("#")
            if frames.strip() and not frames.strip().isdigit():
                raise UserError(
                    f"{prompts_file}:{number}: '{frames}' after '#' must be a frame count, e.g. 'a person jumps#120'."
                )
            prompts.append((text.strip(), int(frames) if frames.strip() else None))
    if not prompts:
        raise UserError(
            'no prompt given: use prompt="a person jumps twice" or prompts_file=<file, one prompt per line>.'
        )
    for text, _ in prompts:
        if not text.strip():
            raise UserError('a prompt is empty; write what the person should do, e.g. prompt="a person waves".')
    return prompts


def warn_unfamiliar_prompts(texts: list, info: TextMotionData) -> None:
    """Warn about each prompt whose words mostly never occur in the run's training captions."""
    vocabulary = training_vocabulary(str(info.source), str(getattr(info, "layout", "humanml3d")))
    if vocabulary is None:
        log.debug("training captions under '%s' are not readable here; prompts are not checked.", info.source)
        return
    for text in dict.fromkeys(texts):
        warning = prompt_warning(text, vocabulary)
        if warning:
            log.warning(warning)


def check_length(length: int, info: TextMotionData) -> int:
    """`length` if it lies in [1, max_frames], else a UserError naming the limits."""
    if isinstance(length, bool) or int(length) != length or not 1 <= length <= info.max_frames:
        raise UserError(
            f"length={length} must be a whole number of frames from 1 to {info.max_frames} (the model's limit)."
        )
    return int(length)


def pick_lengths(requested: list, default: Optional[int], info: TextMotionData, generator: torch.Generator) -> list:
    """One length per request: its own, else `default`, else a draw from the training lengths."""
    pool = info.length_distribution
    lengths = []
    for own in requested:
        if own is None and default is None:
            own = pool[int(torch.randint(len(pool), (1,), generator=generator))]
        lengths.append(check_length(own if own is not None else default, info))
    return lengths


def progress_label(texts: list, num_samples: int) -> str:
    """What the sampler's progress bar says: "3 prompts x 2 motions: 'a person walks', 'a person jumps', ..."."""
    quoted = [f"'{text}'" if len(text) <= 32 else f"'{text[:31]}…'" for text in texts[:2]]
    count = f"{len(texts)} prompt{'s' * (len(texts) > 1)} x {num_samples} motion{'s' * (num_samples > 1)}"
    return f"{count}: {', '.join(quoted)}{', ...' * (len(texts) > 2)}"


def generate_text_and_save(
    module: MotionDiffusion,
    sampler: Sampler,
    encoder: TextEncoder,
    out_dir: Path,
    prompts: list,
    num_samples: int = 1,
    length: Optional[int] = None,
    guidance_weight: Optional[float] = None,
    seed: int = 0,
    render: bool = True,
) -> dict:
    """Write sample_XX.npy (T, J, 3), sample_XX.mp4, grid.mp4 and generation.json for each prompt x sample.

    generation.json records the prompts, lengths, seed, sampler, guidance weight and the skeleton
    (joint names, parents, fps) the joints are on, so `motiondiff.export` can read the folder later."""
    num_samples = whole_number("num_samples", num_samples)
    out_dir = Path(out_dir)
    if (out_dir / SUMMARY_FILE).exists():
        raise UserError(f"'{out_dir}' already holds generated samples; generations are never overwritten.")
    info = module.data
    if encoder.name != info.text_encoder:
        raise UserError(
            f"text encoder '{encoder.name}' differs from the one the run was trained with ('{info.text_encoder}')."
        )
    requests = [(text, own) for text, own in prompts for _ in range(num_samples)]
    generator = torch.Generator(device=module.device).manual_seed(seed)
    lengths = pick_lengths([own for _, own in requests], length, info, torch.Generator().manual_seed(seed))
    texts = [text for text, _ in requests]
    warn_unfamiliar_prompts(texts, info)
    cond = encoder.encode(texts).to(module.device).as_cond()
    frames = max(lengths)
    mask = (
        torch.arange(frames, device=module.device)[None] < torch.tensor(lengths, device=module.device)[:, None]
    )  # (K, N)
    with sampler.labelled(progress_label([text for text, _ in prompts], num_samples)):
        features = module.sample(
            len(requests), sampler, generator, frames=frames, cond=cond, mask=mask, guidance_weight=guidance_weight
        )
    joints = module.to_keypoints(features)  # (K, N, J, 3)
    out_dir.mkdir(parents=True, exist_ok=True)
    clips = [joints[k, :n] for k, n in enumerate(lengths)]
    written = {}
    for index, clip in enumerate(clips):
        written[f"joints_{index:02d}"] = out_dir / f"sample_{index:02d}.npy"
        np.save(written[f"joints_{index:02d}"], clip)
    if render:
        written.update(render_text_samples(out_dir, clips, texts, info))
    weight = module.guidance_weight if guidance_weight is None else guidance_weight
    samples = [
        {"prompt": text, "length": n, "joints": f"sample_{i:02d}.npy"}
        for i, (text, n) in enumerate(zip(texts, lengths))
    ]
    summary = {
        "seed": seed,
        "guidance_weight": weight,
        "sampler": sampler.describe(),
        "precision": dtype_name(module.sampling_dtype),
        "samples": samples,
        **info.skeleton_record(),
        "files": {key: str(path) for key, path in written.items()},
    }
    (out_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str))
    return written

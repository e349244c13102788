"""Long motions from a prompt timeline: each segment under its own prompt, joined by generated transitions.

A timeline holds one segment a line, `0-4s: a person walks forward` (start and end in seconds) or
`3s: a person jumps twice` (a duration, starting where the previous segment ends); frames are
seconds x the run's fps, and the total may be any length. Text runs: each segment is generated under
its own prompt (one longer than the model's max_frames is continued window by window with the frames
before it imposed, `diffusion.chaining`), the segments are put end to end in feature space, and each
boundary is replaced by a transition: its `transition_frames` are in-betweened with `context_frames`
kept on both sides (the end of one segment, the start of the next). Working in features keeps the
root continuous: the representations hold the root's yaw and ground steps per frame, which
`features_to_joints` integrates over the whole motion, so each segment goes on from where the
previous one stands and faces. Dance runs (unconditional): the timeline gives the length and the
labels; the dance is one chain of windows.
"""

import json
import logging
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from motiondiff.core.checks import whole_number
from motiondiff.core.errors import UserError, require_file
from motiondiff.core.types import Motion
from motiondiff.data.info import TextMotionData
from motiondiff.diffusion.chaining import chain_windows
from motiondiff.diffusion.denoiser import Denoiser, check_guidance_weight
from motiondiff.diffusion.samplers import Sampler
from motiondiff.editing.masks import check_editable
from motiondiff.generation.prompts import SUMMARY_FILE, warn_unfamiliar_prompts
from motiondiff.render.skeleton_video import write_skeleton_video
from motiondiff.render.stick3d import write_stick3d_video
from motiondiff.report.page import write_report
from motiondiff.runs.loading import TrainedRun, load_trained_run
from motiondiff.runs.provenance import write_provenance
from motiondiff.text.encoders import TextEmbedding, TextEncoder
from motiondiff.training.diffusion_module import MotionDiffusion

log = logging.getLogger(__name__)
CONTEXT_FRAMES = 10  # frames kept on each side of a transition (0.5 s at 20 fps)
TRANSITION_PROMPTS = ("none", "neighbours")  # what a transition is generated under: nothing, or both neighbours
SECONDS = r"(\d+(?:\.\d+)?)"
RANGE_LINE = re.compile(rf"^{SECONDS}\s*s?\s*-\s*{SECONDS}\s*s\s*:(.*)$")  # 0-4s: prompt
DURATION_LINE = re.compile(rf"^{SECONDS}\s*s\s*:(.*)$")  # 4s: prompt
LINE_HINT = "write 'START-ENDs: prompt' (e.g. '0-4s: a person walks forward') or 'SECONDSs: prompt' (e.g. '3s: ...')"


@dataclass(frozen=True)
class Segment:
    """Frames [start_frame, end_frame) of the motion, generated under `prompt`."""

    start_frame: int
    end_frame: int
    prompt: str

    @property
    def frames(self) -> int:
        return self.end_frame - self.start_frame


@dataclass(frozen=True)
class Transition:
    """Frames [start, end) generated between two segments with [kept_start, start) and [end, kept_end) imposed."""

    kept_start: int
    start: int
    end: int
    kept_end: int
    before: str  # the prompts of the segments it joins
    after: str


def read_timeline_text(source: Union[str, Path]) -> tuple:
    """(name for messages, text): a Path is a file to read, a str the timeline itself."""
    if isinstance(source, str):
        return "timeline", source
    require_file(source, "timeline file (edit.file)", "one segment a line, e.g. '0-4s: a person walks forward'")
    return str(source), Path(source).read_text()


def parse_line(line: str, previous_end: float, where: str) -> tuple:
    """(start, end seconds, prompt) of one timeline line; a duration line starts at `previous_end`."""
    matched = RANGE_LINE.match(line)
    if matched:
        start, end, prompt = float(matched[1]), float(matched[2]), matched[3].strip()
    elif DURATION_LINE.match(line):
        matched = DURATION_LINE.match(line)
        start, end, prompt = previous_end, previous_end + float(matched[1]), matched[2].strip()
    else:
        raise UserError(f"{where}: '{line}' is not a timeline line; {LINE_HINT}.")
    if not prompt:
        raise UserError(f"{where}: '{line}' has no prompt after ':'; say what the person does, e.g. '{line} a jump'.")
    if end <= start:
        raise UserError(f"{where}: '{line}' ends at {end:g}s, not after its start {start:g}s; give START < END.")
    if not math.isclose(start, previous_end, abs_tol=1e-6):
        problem = "a gap" if start > previous_end else "an overlap"
        raise UserError(
            f"{where}: '{line}' starts at {start:g}s but the previous segment ends at {previous_end:g}s ({problem}); "
            "start each segment where the previous one ends."
        )
    return start, end, prompt


def parse_timeline(source: Union[str, Path], fps: float, min_frames: int = 1) -> list:
    """Segments, back to back from frame 0, of a timeline file (a Path) or text (a str); '#' lines are comments."""
    name, text = read_timeline_text(source)
    segments, end = [], 0.0
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{name}:{number}"
        start, end, prompt = parse_line(line, end, where)
        segment = Segment(round(start * fps), round(end * fps), prompt)
        if segment.frames < min_frames:  # the model's shortest training motion
            raise UserError(
                f"{where}: '{prompt}' lasts {segment.frames} frames ({end - start:g}s at {fps:g} fps), below the "
                f"model's minimum of {min_frames} frames; make it at least {min_frames / fps:g}s long."
            )
        segments.append(segment)
    if not segments:
        raise UserError(f"{name} holds no segments; {LINE_HINT}, one segment a line.")
    return segments


def plan_transitions(segments: list, transition_frames: int, context_frames: int, min_frames: int, max_frames: int):
    """One Transition per boundary (none for 0 frames), centred on it, with `context_frames` kept on each side."""
    transition_frames = whole_number("edit.transition", transition_frames, minimum=0)
    context_frames = whole_number("edit.context", context_frames)
    if transition_frames == 0:
        return []
    if transition_frames + 2 * context_frames > max_frames:
        raise UserError(
            f"edit.transition={transition_frames} plus twice edit.context={context_frames} exceeds the model's "
            f"{max_frames} frames; shorten the transition or the context."
        )
    for segment in segments:
        if segment.frames < transition_frames:
            raise UserError(
                f"segment '{segment.prompt}' is {segment.frames} frames, shorter than edit.transition="
                f"{transition_frames}; lengthen the segment or shorten the transition."
            )
    # More context where the window would be shorter than the model's shortest training motion; within its longest.
    context = max(context_frames, math.ceil((min_frames - transition_frames) / 2))
    context = min(context, (max_frames - transition_frames) // 2)
    for segment in segments[1:-1]:  # its two transitions, each with its context, must not reach into each other
        if segment.frames < transition_frames + context:
            raise UserError(
                f"segment '{segment.prompt}' is {segment.frames} frames, fewer than edit.transition={transition_frames}"
                f" plus the {context} frames of context kept beside a transition (edit.context, or more where the"
                " model's shortest motion needs it), so its two transitions would overlap; lengthen the segment, or"
                " shorten the transition or the context."
            )
    total = segments[-1].end_frame
    transitions = []
    for before, after in zip(segments, segments[1:]):
        start = before.end_frame - transition_frames // 2
        end = start + transition_frames
        transitions.append(
            Transition(max(0, start - context), start, end, min(total, end + context), before.prompt, after.prompt)
        )
    return transitions


def continued(
    module: MotionDiffusion,
    sampler: Sampler,
    frames: int,
    window: int,
    overlap: int,
    cond: Optional[dict],
    guidance_weight: Optional[float],
    generator: Optional[torch.Generator],
) -> torch.Tensor:
    """`frames` normalised frames (frames, F): a window, continued by windows imposing the last `overlap` frames."""
    first = module.sample(1, sampler, generator, frames=window, cond=cond, guidance_weight=guidance_weight)  # (1, W, F)
    if frames <= window:
        return first[0, :frames]
    if not 0 < overlap < window:
        raise UserError(f"edit.context={overlap} must lie between 1 and the model's window of {window} frames - 1.")
    count = 1 + math.ceil((frames - window) / (window - overlap))

    def next_window(known: Motion, known_mask: torch.Tensor) -> Motion:
        return module.sample(1, sampler, generator, window, known, known_mask, cond, guidance_weight=guidance_weight)

    return chain_windows(next_window, first, count, overlap)[0, :frames]  # (frames, F)


class CrossfadeDenoiser:
    """The denoiser of two conditions blended frame by frame: `weight` (N,) on the first, 1 - weight on the second."""

    def __init__(self, denoiser: Denoiser, weight: torch.Tensor):
        self.denoiser, self.weight = denoiser, weight[None, :, None]  # (1, N, 1)

    def __call__(self, x_t: Motion, t: torch.Tensor) -> tuple:
        x0, eps = self.denoiser(torch.cat([x_t, x_t]), torch.cat([t, t]))  # (2B, N, F): batch halves per condition
        (x0_a, x0_b), (eps_a, eps_b) = x0.chunk(2), eps.chunk(2)
        return torch.lerp(x0_b, x0_a, self.weight), torch.lerp(eps_b, eps_a, self.weight)


def in_between(
    module: MotionDiffusion,
    sampler: Sampler,
    known: torch.Tensor,
    known_mask: torch.Tensor,
    cond: dict,
    crossfade: Optional[torch.Tensor],
    guidance_weight: Optional[float],
    generator: Optional[torch.Generator],
) -> torch.Tensor:
    """A window (W, F): `known` (W, F) where known_mask (W,) is True, the rest generated under `cond` (or under its
    two conditions crossfaded: `crossfade` (W,) is the first one's weight on each frame)."""
    if crossfade is None:
        return module.sample(
            1, sampler, generator, len(known), known[None], known_mask[None], cond, None, guidance_weight
        )[0]
    denoiser = module.denoiser(cond, None, guidance_weight)
    noise = torch.randn((1, *known.shape), generator=generator, device=module.device)  # (1, W, F)
    blended = CrossfadeDenoiser(denoiser, crossfade.to(module.device))
    return sampler.sample(blended, module.schedule, noise, generator, known[None], known_mask[None])[0]


def transition_condition(embedding: TextEmbedding, rows: dict, transition: Transition, prompt: str) -> tuple:
    """(cond, crossfade) a transition is generated under: the null condition, or both neighbours' prompts blended
    from the first (before the transition) to the second (after it); `rows` maps a prompt to its embedding row."""
    if prompt == "none":
        cond = embedding[rows[transition.before]].as_cond()
        return {**cond, "drop": torch.ones(1, dtype=torch.bool, device=embedding.pooled.device)}, None
    frames = torch.arange(transition.kept_end - transition.kept_start, device=embedding.pooled.device)  # (W,)
    ramp = (frames - (transition.start - transition.kept_start) + 0.5).clamp(min=0) / (
        transition.end - transition.start
    )
    cond = embedding[[rows[transition.before], rows[transition.after]]].as_cond()
    return cond, 1 - ramp.clamp(max=1)  # (W,): 1 before the transition, 0 after it


def frame_prompts(segments: list) -> list:
    """The active prompt of every frame of the timeline."""
    return [segment.prompt for segment in segments for _ in range(segment.frames)]


def generate_timeline(
    module: MotionDiffusion,
    sampler: Sampler,
    encoder: Optional[TextEncoder],
    segments: list,
    transition_frames: int,
    guidance_weight: Optional[float] = None,
    generator: Optional[torch.Generator] = None,
    context_frames: int = CONTEXT_FRAMES,
    transition_prompt: str = "none",
) -> tuple:
    """(normalised features (N, F), the active prompt of each of the N frames) of `parse_timeline`'s segments."""
    total = segments[-1].end_frame
    assert segments[0].start_frame == 0 and all(a.end_frame == b.start_frame for a, b in zip(segments, segments[1:]))
    info = module.data
    if not module.conditional:
        window = info.sample_frames
        return continued(module, sampler, total, window, context_frames, None, None, generator), frame_prompts(segments)
    transitions = plan_transitions(segments, transition_frames, context_frames, info.min_frames, info.max_frames)
    if transition_prompt not in TRANSITION_PROMPTS:
        choices = " or ".join(TRANSITION_PROMPTS)
        raise UserError(f"edit.transition_prompt={transition_prompt} is not an option; use {choices}.")
    rows = {text: row for row, text in enumerate(dict.fromkeys(segment.prompt for segment in segments))}
    embedding = encoder.encode(list(rows)).to(module.device)  # one row per distinct prompt
    pieces = []
    for number, segment in enumerate(segments, 1):
        cond = embedding[rows[segment.prompt]].as_cond()
        window = min(segment.frames, info.max_frames)
        with sampler.labelled(f"segment {number}/{len(segments)}: '{segment.prompt}'"):
            args = (segment.frames, window, context_frames, cond, guidance_weight, generator)
            pieces.append(continued(module, sampler, *args))
    features = torch.cat(pieces)  # (N, F)
    for number, transition in enumerate(transitions, 1):
        window = slice(transition.kept_start, transition.kept_end)
        known_mask = torch.ones(window.stop - window.start, dtype=torch.bool, device=module.device)  # (W,)
        known_mask[transition.start - window.start : transition.end - window.start] = False
        cond, crossfade = transition_condition(embedding, rows, transition, transition_prompt)
        weight = 1.0 if crossfade is None else guidance_weight  # the null condition has nothing to guide
        with sampler.labelled(f"transition {number}/{len(transitions)}"):
            features[window] = in_between(
                module, sampler, features[window], known_mask, cond, crossfade, weight, generator
            )
    return features, frame_prompts(segments)


def run_timeline(cfg: DictConfig) -> dict:
    """The edit command's `edit=timeline`: `num_samples` motions of the timeline in edit.file, written as generate
    writes samples (sample_XX.npy, sample_XX.mp4 with the active prompt, generation.json with the timeline)."""
    for key in ("source", "prompt", "length"):
        if cfg.get(key) is not None:
            raise UserError(f"edit=timeline takes its prompts and lengths from edit.file; drop {key}={cfg[key]}.")
    if not cfg.edit.get("file"):
        raise UserError(f"edit=timeline needs edit.file=<a timeline file>; {LINE_HINT}, one segment a line.")
    run = load_trained_run(cfg)
    module, info = run.module, run.module.data
    check_editable(info)
    min_frames = info.min_frames if isinstance(info, TextMotionData) else 1
    segments = parse_timeline(Path(cfg.edit.file), info.fps, min_frames)
    encoder, weight = timeline_encoder(run, [segment.prompt for segment in segments], cfg.guidance_weight)
    sampler = run.sampler.with_resample(cfg.edit.resample)
    generator = torch.Generator(device=module.device).manual_seed(cfg.seed)
    options = (cfg.edit.transition, weight, generator, cfg.edit.context, cfg.edit.transition_prompt)
    features = [
        generate_timeline(module, sampler, encoder, segments, *options)[0]
        for _ in range(whole_number("num_samples", cfg.num_samples))
    ]
    motions = module.to_keypoints(torch.stack(features))  # (K, N, J, D)
    out_dir = Path(cfg.paths.output_dir)
    written = write_timeline(out_dir, module, motions, frame_prompts(segments), bool(cfg.render))
    transitions = (
        plan_transitions(segments, cfg.edit.transition, cfg.edit.context, min_frames, info.max_frames)
        if isinstance(info, TextMotionData)
        else []
    )
    summary = {
        "mode": "timeline",
        "timeline": timeline_record(cfg, info.fps, segments, transitions),
        "seed": cfg.seed,
        "sampler": sampler.describe(),
        "guidance_weight": weight,
        "samples": [
            {"prompt": "; ".join(s.prompt for s in segments), "length": motions.shape[1], key: f"sample_{i:02d}.npy"}
            for i, key in enumerate(["joints" if isinstance(info, TextMotionData) else "keypoints"] * len(motions))
        ],
        **info.skeleton_record(),
        "files": {key: str(path) for key, path in written.items()},
    }
    (out_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str))
    write_provenance(out_dir, run)
    written["report"] = write_report(out_dir)
    log.info("Wrote %d timeline motions of %d frames to %s", len(motions), motions.shape[1], out_dir)
    return written


def timeline_encoder(run: TrainedRun, prompts: list, guidance_weight) -> tuple:
    """(the run's text encoder, the guidance weight) for a text run; (None, None) for a dance run."""
    module = run.module
    if not module.conditional:
        if guidance_weight is not None:
            raise UserError(f"'{run.run_dir}' is an unconditional model (trained without text); drop guidance_weight.")
        return None, None
    encoder = instantiate(run.config.text_encoder)
    if encoder.name != module.data.text_encoder:
        raise UserError(f"text encoder '{encoder.name}' differs from the run's ('{module.data.text_encoder}').")
    warn_unfamiliar_prompts(prompts, module.data)
    weight = module.guidance_weight if guidance_weight is None else check_guidance_weight(guidance_weight)
    return encoder, weight


def write_timeline(out_dir: Path, module: MotionDiffusion, motions: np.ndarray, prompts: list, render: bool) -> dict:
    """sample_XX.npy (N, J, D) per motion and, with `render`, sample_XX.mp4 showing each frame's prompt."""
    out_dir.mkdir(parents=True, exist_ok=True)
    info, written = module.data, {}
    for index, motion in enumerate(motions):
        written[f"joints_{index:02d}"] = out_dir / f"sample_{index:02d}.npy"
        np.save(written[f"joints_{index:02d}"], motion)
        if not render:
            continue
        video = written[f"video_{index:02d}"] = out_dir / f"sample_{index:02d}.mp4"
        if isinstance(info, TextMotionData):
            write_stick3d_video(video, motion, info.parents, info.fps, names=info.joint_names, captions=prompts)
        else:
            title = " / ".join(dict.fromkeys(prompts))
            write_skeleton_video(video, motion, info.parents, info.fps, title=title, names=info.joint_names)
    return written


def timeline_record(cfg: DictConfig, fps: float, segments: list, transitions: list) -> dict:
    """What generation.json records of the timeline: its segments and transitions, in frames and seconds."""
    return {
        "file": str(cfg.edit.file),
        "fps": fps,
        "segments": [{**asdict(s), "start_s": s.start_frame / fps, "end_s": s.end_frame / fps} for s in segments],
        "transition_frames": cfg.edit.transition,
        "context_frames": cfg.edit.context,
        "transition_prompt": cfg.edit.transition_prompt,
        "transitions": [asdict(transition) for transition in transitions],
    }

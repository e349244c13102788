"""The app's model, loaded once, and its generations: one at a time, each in a new numbered folder of the session.

Generation goes through the generate command's own code (generation.prompts for text runs,
generation.windows for dance runs, export.run for BVH), so a motion made on the page is the motion
`python -m motiondiff.generate` makes with the same settings and seed. A request is bounded
(app.limits) before it waits; then it takes the lock, so generations never overlap: a second
request waits for the first and then runs.
"""

import dataclasses
import itertools
import logging
import statistics
import threading
import time
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from motiondiff.app.limits import GenerationRequest, Limits, ModelFacts, chained_frames, dance_windows, read_request
from motiondiff.core.errors import UserError
from motiondiff.export.run import check_export, export_motions, read_generation, write_summary
from motiondiff.generation.prompts import generate_text_and_save
from motiondiff.generation.windows import LONG_FILE, SAMPLES_FILE, generate_and_save
from motiondiff.report.player import PlayerMotion, motions_payload
from motiondiff.runs.loading import TrainedRun, load_trained_run
from motiondiff.runs.provenance import write_provenance
from motiondiff.text.encoders import TextEncoder

log = logging.getLogger(__name__)

ARCHIVE = "motions.zip"
NO_BVH = (
    "BVH needs 3D joints: this run makes 2D keypoints (x, y per joint on the image plane), which have no depth "
    "to solve joint rotations from, so its motions download as .npy only."
)
# What each file of a generation folder is, as the page's download list says it: by name, else by suffix.
DESCRIPTIONS = {
    "generation.json": "the settings: prompt, length, seed, sampler, skeleton",
    "export.json": "the export's settings and how far each file is from the joints",
    "source.json": "provenance: the run and its checkpoint's SHA-256",
    "run_config.yaml": "the run's training config",
    SAMPLES_FILE: "positions (windows, frames, joints, 2 or 3)",
    LONG_FILE: "positions (frames, joints, 2 or 3)",
    ".npy": "joints (frames, joints, 3) in metres, y up",
    ".bvh": "BVH: joint rotations on the motion's own skeleton",
    ".npz": "SMPL parameters",
    ".mp4": "video",
    ".zip": "every file of this generation",
}


@dataclass
class Generation:
    """One finished generation: its folder and the files the app may serve from it (name -> path)."""

    name: str  # the folder's name inside the session, e.g. "003"
    folder: Path
    files: dict


class WarningsCaught(logging.Handler):
    """Collects the warnings motiondiff logs while one generation runs (e.g. a prompt far from the captions)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def caught_warnings():
    handler, logger = WarningsCaught(), logging.getLogger("motiondiff")
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


def model_facts(
    run: TrainedRun, samplers: DictConfig, limits: Limits, chain_overlap: int, guidance_weight: Optional[float] = None
) -> ModelFacts:
    """What the page offers for this run: its kind, frame limits, samplers and defaults (guidance: the run's own
    unless `guidance_weight` is given)."""
    info, own = run.module.data, run.sampler
    schedule_steps = int(run.config.schedule.num_steps)
    options = {name: OmegaConf.select(option, "num_steps") for name, option in samplers.items()}
    options = {name: None if steps is None else min(steps, schedule_steps) for name, steps in options.items()}
    own_name = next((name for name, option in samplers.items() if option._target_.endswith(type(own).__name__)), None)
    default_sampler = own_name or next(iter(options))
    default_steps = getattr(own, "num_steps", None) if own_name else options[default_sampler]
    common = {
        "fps": float(info.fps),
        "joints": info.num_joints,
        "dims": info.dims,
        "schedule_steps": schedule_steps,
        "samplers": options,
        "default_sampler": default_sampler,
        "default_steps": default_steps,
    }
    if run.module.conditional:
        typical = int(statistics.median(info.length_distribution))
        weight = float(run.module.guidance_weight if guidance_weight is None else guidance_weight)
        if not limits.min_guidance <= weight <= limits.max_guidance:
            raise UserError(
                f"guidance_weight={weight:g} lies outside limits.min_guidance..max_guidance "
                f"({limits.min_guidance:g}..{limits.max_guidance:g}); give one inside or widen the limits."
            )
        return ModelFacts(
            kind="text",
            min_frames=1,
            max_frames=info.max_frames,
            default_frames=min(typical, info.max_frames),
            window=None,
            overlap=None,
            default_guidance=weight,
            **common,
        )
    if not 0 < chain_overlap < info.window:
        raise UserError(f"chain_overlap={chain_overlap} must lie between 1 and the window length {info.window} - 1.")
    return ModelFacts(
        kind="dance",
        min_frames=info.window,
        max_frames=chained_frames(limits.max_windows, info.window, chain_overlap),
        default_frames=info.window,
        window=info.window,
        overlap=chain_overlap,
        default_guidance=None,
        **common,
    )


class Studio:
    """A trained run ready to generate from the page, and the generations made in this session's folder."""

    def __init__(
        self,
        run: TrainedRun,
        encoder: Optional[TextEncoder],
        samplers: DictConfig,
        limits: Limits,
        out_dir: Path,
        export_cfg: Optional[DictConfig] = None,
        smpl_cfg: Optional[DictConfig] = None,
        chain_overlap: int = 16,
        render: bool = False,
        first_seed: int = 0,
        guidance_weight: Optional[float] = None,
    ):
        self.run, self.encoder, self.samplers, self.limits = run, encoder, samplers, limits
        self.out_dir = Path(out_dir)
        self.facts = model_facts(run, samplers, limits, chain_overlap, guidance_weight)
        self.export_cfg = export_cfg if self.facts.kind == "text" else None
        self.smpl_cfg = smpl_cfg
        if self.export_cfg is not None:
            check_export(self.export_cfg, False, smpl_cfg, run.module.data.joint_names)  # at start, not per request
        self.render = render
        self.generations = {}  # name -> Generation
        self.history = []  # (name, started, finished) in time.perf_counter() seconds, in the order they ran
        self._lock, self._count_lock = threading.Lock(), threading.Lock()
        self._seeds, self._names = itertools.count(first_seed), itertools.count(1)
        self._waiting = 0

    def info(self) -> dict:
        """The run and its facts, as the page starts with them (also GET /api/info)."""
        return {
            "run_dir": str(self.run.run_dir),
            "checkpoint": self.run.checkpoint.name,
            "device": str(self.run.module.device),
            "model": self.facts.to_dict(),
            "limits": {
                "max_samples": self.limits.max_samples,
                "max_prompt_chars": self.limits.max_prompt_chars,
                "min_guidance": self.limits.min_guidance,
                "max_guidance": self.limits.max_guidance,
            },
            "export": None if self.export_cfg is None else self.export_cfg.format,
            "no_export_reason": NO_BVH if self.run.module.data.kind == "keypoints" else None,
        }

    def status(self) -> dict:
        with self._count_lock:
            return {"running": self._lock.locked(), "waiting": self._waiting, "generations": len(self.generations)}

    def read(self, body) -> GenerationRequest:
        """The request bounded, its prompt's tokens counted: refusals come before the wait for the model."""
        request = read_request(body, self.facts, self.limits)
        if request.prompt is not None:
            (tokens,) = self.encoder.count_tokens([request.prompt])
            if tokens > self.encoder.max_tokens:
                raise UserError(
                    f"the prompt has {tokens} tokens but the {self.encoder.name} text encoder takes at most "
                    f"{self.encoder.max_tokens}; shorten it."
                )
        return request

    def generate(self, body) -> dict:
        """Bound the request, wait for any generation in progress, generate; the page's result (JSON-ready)."""
        request = self.read(body)
        queued = time.perf_counter()
        with self._count_lock:
            self._waiting += 1
        try:
            self._lock.acquire()
        finally:
            with self._count_lock:
                self._waiting -= 1
        try:
            started = time.perf_counter()
            name = f"{next(self._names):03d}"
            if request.seed is None:  # seeds in the order generations run: the session's first seed, then + 1
                request = dataclasses.replace(request, seed=next(self._seeds))
            with caught_warnings() as warnings:
                result = self._generate(name, request)
            finished = time.perf_counter()
            self.history.append((name, started, finished))
        finally:
            self._lock.release()
        result.update(waited_s=round(started - queued, 3), took_s=round(finished - started, 3), warnings=warnings)
        return result

    def _generate(self, name: str, request: GenerationRequest) -> dict:
        folder = self.out_dir / name
        if folder.exists():
            raise UserError(f"'{folder}' already exists; generations are never overwritten.")
        sampler = self.sampler(request)
        if self.facts.kind == "text":
            motions, notes = self._text(folder, request, sampler)
        else:
            motions, notes = self._dance(folder, request, sampler)
        write_provenance(folder, self.run)
        files = archive(folder)
        self.generations[name] = Generation(name, folder, files)
        log.info("generation %s: %s", name, folder)
        return {
            "name": name,
            "folder": str(folder),
            "request": request.to_dict(),
            "frames": request.frames,
            "seconds": round(request.frames / self.facts.fps, 3),
            "player": motions_payload(motions),
            "downloads": downloads(name, files),
            "notes": notes,
        }

    def sampler(self, request: GenerationRequest):
        """The chosen option of the sampler group, with the requested steps."""
        option = self.samplers[request.sampler]
        changes = {} if request.steps is None else {"num_steps": request.steps}
        return instantiate(OmegaConf.merge(option, changes))

    def _text(self, folder: Path, request: GenerationRequest, sampler) -> tuple:
        generate_text_and_save(
            self.run.module,
            sampler,
            self.encoder,
            folder,
            [(request.prompt, None)],
            request.num_samples,
            request.frames,
            request.guidance_weight,
            request.seed,
            self.render,
        )
        motions = read_generation(folder, None)
        notes = []
        if self.export_cfg is not None:
            records = export_motions(motions, folder, self.export_cfg, False, self.smpl_cfg)
            write_summary(folder, str(folder), self.export_cfg, records)
            if self.export_cfg.format == "bvh" and not self.export_cfg.skeleton:
                error = max(record["max_error_m"] for record in records)
                drift = max(record["bone_drift"] for record in records)
                notes.append(
                    f"The BVH files keep each bone at one length: their joints lie within {error * 1000:.1f} mm of "
                    f"the generated ones, whose bone lengths vary by up to {100 * drift:.1f}% (export.json)."
                )
        player = [
            PlayerMotion(
                motion.positions,
                motion.parents,
                motion.fps,
                f"sample {index}",
                motion.caption,
                None,
                motion.joint_names,
            )
            for index, motion in enumerate(motions)
        ]
        return player, notes

    def _dance(self, folder: Path, request: GenerationRequest, sampler) -> tuple:
        facts, info = self.facts, self.run.module.data
        windows = dance_windows(request.frames, facts.window, facts.overlap)
        generate_and_save(
            self.run.module,
            sampler,
            folder,
            request.num_samples,
            request.seed,
            windows if windows > 1 else 0,
            facts.overlap,
            self.render,
        )
        samples = np.load(folder / SAMPLES_FILE)  # (K, N, J, 2)
        player = [
            PlayerMotion(sample, info.parents, info.fps, f"sample {index}", joint_names=info.joint_names)
            for index, sample in enumerate(samples)
        ]
        notes = [] if info.kind == "bvh_dance" else [NO_BVH]  # the 3D dance writes sample_XX.bvh
        if windows > 1:
            long = np.load(folder / LONG_FILE)  # (L, J, 2)
            label = f"sample 0 continued: {windows} windows"
            player.insert(0, PlayerMotion(long, info.parents, info.fps, label, joint_names=info.joint_names))
            notes.insert(
                0,
                f"A dance model makes windows of {facts.window} frames; sample 0 is continued by more windows "
                f"({facts.overlap} frames shared, all sampled together) to {len(long)} frames, the whole windows "
                "nearest above the length asked for.",
            )
        return player, notes


def archive(folder: Path) -> dict:
    """Zip every file of a generation folder into it; {name: path} of the files the app may serve from it."""
    files = {path.relative_to(folder).as_posix(): path for path in sorted(folder.rglob("*")) if path.is_file()}
    path = folder / ARCHIVE
    with zipfile.ZipFile(path, "x", zipfile.ZIP_DEFLATED) as bundle:  # "x": never over an existing file
        for name, source in files.items():
            bundle.write(source, f"{folder.name}/{name}")
    return {**files, ARCHIVE: path}


def describe(name: str) -> str:
    return DESCRIPTIONS.get(name, DESCRIPTIONS.get(Path(name).suffix, ""))


def downloads(name: str, files: dict) -> list:
    """The page's download links: the motions first, then settings and the archive."""
    order = {".npy": 0, ".bvh": 1, ".npz": 1, ".mp4": 2, ".zip": 3, ".json": 4}
    listed = sorted(files, key=lambda file: (order.get(Path(file).suffix, 5), file))
    return [
        {"name": file, "url": f"/files/{name}/{file}", "bytes": files[file].stat().st_size, "what": describe(file)}
        for file in listed
    ]


def open_studio(cfg: DictConfig, out_dir: Path) -> Studio:
    """Load the run named by the app's config once (EMA weights, as generate does) and its text encoder."""
    run = load_trained_run(cfg)
    encoder = instantiate(run.config.text_encoder) if run.module.conditional else None
    if encoder is not None:
        encoder.encode(["a person walks"])  # loads it now, and refuses one that cannot encode new prompts
    limits = Limits(**OmegaConf.to_container(cfg.limits))
    return Studio(
        run,
        encoder,
        cfg.samplers,
        limits,
        out_dir,
        cfg.get("export"),
        cfg.smpl,
        cfg.chain_overlap,
        bool(cfg.render),
        cfg.seed,
        cfg.guidance_weight,
    )

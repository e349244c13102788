"""Single-dance evaluation: the single-motion measures of chained dances as long as the training span demands.

Protocol (GANimator's evaluate.py: clips of twice the training length, each scored on its own). Per replication r
(seed + r) the run generates `clips` dances of `duration_factor` x the training span's frames each, windows sharing
`chain_overlap` frames as generation makes them (`chain_sampling`: joint, all windows denoised together and blended
at every step; or sequential, a first window continued by `diffusion.chaining.chain_windows`, the last `chain_blend`
shared frames crossfaded), cut to length; with `collage_strength` each clip's windows start from a shuffled collage
of the training span noised that far (data.collage). Each clip goes through `datamodule.measure_space` (normalised
features (T, F) -> descriptors (T, D), positions (T, J, dims)) and is measured against the training span
(motiondiff.metrics.single_motion): coverage and the diversities per clip,
averaged over the clips; the copy check against the dance's held-out span. `datamodule.contact_setup()` -> (up axis
index or None, contact joints or None) says whether and on which joints foot skating is measured. The `validation`
row (the reference, evaluation.report.SINGLE_DANCE) is the held-out span measured the same way as one clip: its
copy_ratio is 1 by definition and its coverage low (a short stretch of other moves), a reference for the others.
GANimator's measures are added in its rotation units for a 3D dance (metrics.ganimator.published_report), and for a
2D dance read from a BVH file as its coverage at an RMS threshold calibrated to GANimator's on the file's rotations
(matched_coverage_setup, the project's own calibration; the threshold goes to the settings).
"""

import logging
import math
from typing import Optional

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from motiondiff.core.checks import whole_number
from motiondiff.core.errors import UserError
from motiondiff.data.collage import collage_plan
from motiondiff.data.dance3d import Dance3DDataModule
from motiondiff.data.dance_windows import DanceDataModule
from motiondiff.data.kinematics.contacts import contact_joints
from motiondiff.diffusion.chaining import chained_length
from motiondiff.metrics.ganimator import matched_threshold, published_report, published_windows, rotation_rows
from motiondiff.metrics.single_motion import (
    COPY_FRACTION,
    COVERAGE_THRESHOLD,
    clip_coverage,
    resolve_windows,
    single_motion_report,
)
from motiondiff.training.chained_sampling import check_chain, collage_record, sample_chain

log = logging.getLogger(__name__)


def evaluate_dance(run, cfg: DictConfig) -> tuple:
    """Rows {"validation": [...], "generated": [...]} of per-replication measures, and the settings used."""
    clips = whole_number("clips", cfg.clips, minimum=2, why="inter-clip diversity needs pairs")
    info = run.module.data
    overlap, blend, mode = check_chain(
        info.window, cfg.chain_overlap, cfg.get("chain_blend", 0), cfg.get("chain_sampling", "joint")
    )
    if not float(cfg.duration_factor) > 0:
        raise UserError(f"duration_factor={cfg.duration_factor} must be positive; GANimator's is 2.0.")
    datamodule = instantiate(run.config.dataset)
    datamodule.setup("fit")
    training, training_positions = datamodule.measure_space(datamodule.train_set.features.numpy())  # (T, D)
    heldout, heldout_positions = datamodule.measure_space(datamodule.val_set.features.numpy())  # (V, D)
    up_index, feet = datamodule.contact_setup()
    frames = max(info.window, int(round(float(cfg.duration_factor) * len(training))))
    count = chained_windows(frames, info.window, overlap)
    cleanup = hasattr(datamodule, "lock_feet")  # the 3D dance's post-process
    lock = cleanup and bool(cfg.get("foot_lock", False))
    pin = cleanup and info.pins(cfg.get("foot_ik", False))  # "auto": where the pins fit the data

    rotations = getattr(datamodule, "local_rotations", None)  # 3D: GANimator's measures in its units too

    def rotation_space(features: np.ndarray, opening_frame: int = 0) -> np.ndarray:  # (T, F) -> (T, 6K)
        return rotation_rows(rotations(features, opening_frame))

    training_rows = None if rotations is None else rotation_space(datamodule.train_set.features.numpy())
    matched = matched_coverage_setup(datamodule, training, heldout, info.fps)  # 2D from a BVH: 2.0's strictness

    def report(descriptors: list, positions: list, features: list, opening_frame: int = 0) -> dict:
        measured = single_motion_report(
            descriptors, training, [heldout], info, positions, training_positions, up_index, feet
        )
        if rotations is not None:
            rows = [rotation_space(f, opening_frame) for f in features]
            measured.update(published_report(rows, training_rows, info.fps))
        if matched is not None:
            window, short = matched["window"], min(len(clip) for clip in descriptors) < matched["window"]
            coverage = float("nan") if short else clip_coverage(descriptors, training, window, matched["rms"])
            measured["ganimator_coverage"] = coverage  # nan for clips under a window, as in 3D
        return as_floats(measured)

    plan, strength, length = None, cfg.get("collage_strength"), chained_length(info.window, count, overlap)
    if strength is not None:
        plan = collage_plan(strength, cfg.get("collage_piece"), info.window, len(training))
    reference = report([heldout], [heldout_positions], [datamodule.val_set.features.numpy()], len(training))
    rows = {"validation": [], "generated": []}
    for replication in range(cfg.replications):
        generator = torch.Generator(device=run.module.device).manual_seed(cfg.seed + replication)
        guides = None if plan is None else (plan.guides(datamodule.train_set.features, clips, length, generator), plan)
        dances = generate_dances(run, clips, frames, overlap, blend, generator, guides, mode)  # (K, frames, F)
        if lock or pin:
            dances = np.stack([datamodule.lock_feet(dance, lock, pin) for dance in dances])  # as generate writes them
        measured = [datamodule.measure_space(dance) for dance in dances]
        rows["generated"].append(report([d for d, _ in measured], [p for _, p in measured], list(dances)))
        rows["validation"].append(reference)
    settings = {
        "protocol": "single_dance",
        "clips": clips,
        "duration_factor": float(cfg.duration_factor),
        "generated_frames": frames,
        "chain_overlap": overlap,
        "chain_blend": blend,  # None: joint windows are blended at every step instead
        "chain_sampling": mode,
        "foot_lock": lock,
        "foot_ik": pin,
        "collage": None if plan is None else collage_record(run.module, run.sampler, plan),
        "chained_windows": count,
        "training_frames": len(training),
        "heldout_frames": len(heldout),
        "windows": resolve_windows([heldout, measured[0][0]], info),
        "coverage_threshold": COVERAGE_THRESHOLD,
        "copy_fraction": COPY_FRACTION,
        **({} if rotations is None else {"ganimator_windows": published_windows(info.fps)}),
        **({} if matched is None else {"ganimator_threshold": matched}),
        "foot_contacts": foot_contacts(training_positions, info, up_index, feet),
    }
    return rows, settings


def matched_coverage_setup(datamodule, training: np.ndarray, heldout: np.ndarray, fps: float) -> Optional[dict]:
    """For a 2D dance read from a BVH file: the RMS threshold on its descriptors calibrated to GANimator's 2.0 on
    the same frames' rotations (metrics.ganimator.matched_threshold over its 1 s window pairs), with the
    window, the decisions' kappa and the share of pairs alike; None for other dances, for a clip shorter than two
    windows, or where the 3D reading of the file does not give the same frames."""
    window = published_windows(fps)["coverage_window"]
    source = str(getattr(datamodule, "source", ""))
    if not isinstance(datamodule, DanceDataModule) or not source.lower().endswith(".bvh"):
        return None
    if len(training) + len(heldout) < 2 * window or len(training) < window:
        log.warning("no GANimator coverage: '%s' is shorter than two windows of %d frames", source, window)
        return None
    rows = rotation_twin(source, datamodule.window, datamodule.val_fraction, fps)
    if rows is None or len(rows) != len(training) + len(heldout):
        log.warning("no GANimator coverage: the 3D reading of '%s' does not give the 2D dance's frames", source)
        return None
    rms, kappa, alike = matched_threshold(np.concatenate([training, heldout]), rows, window)
    if not np.isfinite(kappa):
        log.warning(
            "GANimator's 2.0 counts %s of '%s''s window pairs alike: nothing to calibrate the 2D threshold on",
            "none" if alike == 0 else "all",
            source,
        )
    return {"rms": rms, "window": window, "kappa": kappa, "pairs_alike": alike}


def rotation_twin(source: str, window: int, val_fraction: float, fps: float) -> Optional[np.ndarray]:
    """GANimator's rotation rows (T + V, 6K) of a BVH file's training then held-out span as the 3D dance reads it
    (each span's heading from its own opening); None where the 3D dance refuses the file."""
    twin = Dance3DDataModule(source=source, window=window, val_fraction=val_fraction, fps=fps, metres_per_unit=1.0)
    try:
        twin.setup("fit")
    except UserError as error:
        log.warning("no GANimator coverage for '%s': %s", source, error)
        return None
    training, heldout = twin.train_set.features.numpy(), twin.val_set.features.numpy()
    spans = [twin.local_rotations(training), twin.local_rotations(heldout, len(training))]  # (T, K, 3, 3), (V, ...)
    return np.concatenate([rotation_rows(span) for span in spans])


def foot_contacts(training_positions: np.ndarray, info, up_index, feet) -> str:
    """What foot skating is measured on, in words: the up axis and the contact joints' names."""
    if up_index is None:
        return "none (no up axis: 2D)"
    joints = contact_joints(training_positions, info.parents, up_index) if feet is None else feet
    return f"up axis {up_index}; joints {', '.join(info.joint_names[j] for j in joints) or 'none found'}"


def chained_windows(frames: int, window: int, overlap: int) -> int:
    """How many windows of `window` frames, `overlap` shared, reach `frames` frames."""
    return 1 + max(0, math.ceil((frames - window) / (window - overlap)))


def generate_dances(
    run,
    clips: int,
    frames: int,
    overlap: int,
    blend: Optional[int],
    generator: torch.Generator,
    guides=None,
    mode: str = "joint",
) -> np.ndarray:
    """`clips` dances of `frames` frames each, chained windows of the run's sampler (`mode`: joint or sequential, as
    `sample_chain` takes it): (K, frames, F) float64. With `guides` (collages (K, L, F), CollagePlan) the windows
    start from their collage's frames noised that far."""
    count = chained_windows(frames, run.module.data.window, overlap)
    guide, strength = (None, None) if guides is None else (guides[0], guides[1].strength)
    label = f"window {{number}}/{{count}} of {clips} evaluation dances"
    chained = sample_chain(
        run.module,
        run.sampler,
        generator,
        count,
        overlap,
        blend,
        label,
        batch=clips,
        guide=guide,
        strength=strength,
        mode=mode,
    )
    return chained[:, :frames].float().cpu().double().numpy()


def as_floats(report: dict) -> dict:
    """The report with its bool (copies_training) as 0/1, so replications average to a fraction."""
    return {key: float(value) for key, value in report.items()}

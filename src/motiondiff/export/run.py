"""`python -m motiondiff.export` and `generate export=...`: 3D motions -> BVH files, SMPL parameters, mesh videos.

`python -m motiondiff.export input=<generation folder | joints .npy> export=bvh|smpl [render=mesh]`
The motions come from a generation folder (its generation.json names the skeleton, frame rate and
prompts) or a `.npy` of joints (T, J, 3) or (K, T, J, 3) in metres (`units=mm` for KIT-ML's new_joints/: a bone
over a metre long is refused as another unit), y up, on a tree recognised by its joint count (22: SMPL /
HumanML3D, 21: KIT-ML). Each motion is written as `<name>.bvh` (or
`<name>.smpl.npz`), with `<name>_mesh.mp4` for `render=mesh`; `export.json` lists what was written and,
for BVH, how far the file's motion is from the input.
"""

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from omegaconf import DictConfig

from motiondiff.core.checks import frame_rate
from motiondiff.core.errors import UserError
from motiondiff.data.formats.bvh import load_bvh_hierarchy
from motiondiff.data.formats.bvh_to_humanml3d import choose_joint_map
from motiondiff.data.formats.bvh_write import check_order
from motiondiff.data.formats.smpl_model import load_smpl, model_file
from motiondiff.data.formats.smpl_params import UPS, write_smpl_npz
from motiondiff.data.kinematics.skeleton import KIT21_NAMES, KIT21_PARENTS, SMPL22_NAMES, SMPL22_PARENTS
from motiondiff.export.bvh import positions_to_bvh
from motiondiff.export.retarget import retarget_to_bvh
from motiondiff.export.smpl import render_mesh, solve

log = logging.getLogger(__name__)

GENERATION_FILE = "generation.json"  # what generate writes beside its samples
EXPORT_FILE = "export.json"
# Trees recognised by their joint count in a bare .npy: (names, parents, the dataset's frame rate).
TREES = {22: (SMPL22_NAMES, SMPL22_PARENTS, 20.0), 21: (KIT21_NAMES, KIT21_PARENTS, 12.5)}
UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001}  # a bare .npy's length unit -> metres
LONGEST_BONE_M = 1.0  # no bone of a human body is a metre long: bones longer than that are in another unit


@dataclass(frozen=True)
class Motion:
    """One 3D motion to export: joints (T, J, 3) in metres, y up, on a named tree, at `fps`."""

    name: str  # the output files' stem, e.g. sample_03
    positions: np.ndarray  # (T, J, 3)
    joint_names: tuple
    parents: tuple
    fps: float
    caption: str = ""

    def __post_init__(self):
        frames = len(self.positions)
        assert self.positions.shape == (frames, len(self.joint_names), 3), (self.positions.shape, self.name)
        assert len(self.parents) == len(self.joint_names)


def tree_of(joints: int, source: str) -> tuple:
    """(names, parents, fps) of the tree with this many joints; UserError for others."""
    if joints not in TREES:
        raise UserError(
            f"{source} has {joints} joints: only the 22-joint SMPL / HumanML3D and 21-joint KIT-ML trees are "
            "recognised from a bare .npy; export a generation folder instead (its generation.json names the skeleton)."
        )
    return TREES[joints]


def checked_joints(array: np.ndarray, source: str) -> np.ndarray:
    """Joints (K, T, J, 3) from a (T, J, 3) or (K, T, J, 3) array; UserError for 2D keypoints or other shapes."""
    if array.ndim in (3, 4) and array.shape[-1] == 2:
        raise UserError(f"{source} holds 2D keypoints {array.shape}: BVH and SMPL export need 3D joints (T, J, 3).")
    if array.ndim not in (3, 4) or array.shape[-1] != 3:
        raise UserError(f"{source} has shape {array.shape}; export reads joints (T, J, 3) or (K, T, J, 3).")
    return array[None] if array.ndim == 3 else array


def read_npy(path: Path, fps: Optional[float], units: str = "m") -> list:
    """The motions of a joints .npy (never unpickled) in `units` (UNITS), named <stem>_XX when it holds several."""
    if units not in UNITS:
        raise UserError(f"units={units} is not one of {', '.join(UNITS)}; KIT-ML's new_joints/ are in mm.")
    array = checked_joints(np.load(path, allow_pickle=False), f"'{path}'") * UNITS[units]  # (K, T, J, 3) metres
    names, parents, dataset_fps = tree_of(array.shape[2], f"'{path}'")
    bones = np.linalg.norm(array[:, :, 1:] - array[:, :, list(parents[1:])], axis=-1)  # (K, T, J-1)
    longest = float(np.median(bones, axis=(0, 1)).max())  # the longest bone, by its median length
    if longest > LONGEST_BONE_M:
        raise UserError(
            f"'{path}' has a bone {longest:.3g} m long read as units={units}: these joints are in a smaller unit "
            "(KIT-ML's new_joints/ are millimetres); give units=mm or units=cm."
        )
    fps = dataset_fps if fps is None else frame_rate(fps)
    stems = [path.stem] if len(array) == 1 else [f"{path.stem}_{k:02d}" for k in range(len(array))]
    return [Motion(stem, clip.astype(np.float64), names, parents, fps) for stem, clip in zip(stems, array)]


def read_generation(folder: Path, fps: Optional[float]) -> list:
    """The motions of a generation folder, with their prompts, skeleton and frame rate from generation.json."""
    summary = json.loads((folder / GENERATION_FILE).read_text())
    samples = summary.get("samples") or []
    if not samples or "joints" not in samples[0]:
        raise UserError(f"'{folder}' holds no 3D samples (a dance generation?): BVH and SMPL export need 3D joints.")
    motions = []
    for sample in samples:
        path = folder / sample["joints"]
        joints = checked_joints(np.load(path, allow_pickle=False), f"'{path}'")[0]  # (T, J, 3)
        skeleton = summary.get("skeleton")
        if skeleton:
            names, parents, own_fps = tuple(skeleton["joint_names"]), tuple(skeleton["parents"]), skeleton["fps"]
        else:  # generation folders written before the skeleton was recorded
            names, parents, own_fps = tree_of(joints.shape[1], f"'{path}'")
        rate = frame_rate(own_fps if fps is None else fps)
        motions.append(Motion(path.stem, joints.astype(np.float64), names, parents, rate, sample["prompt"]))
    return motions


def read_motions(source, fps: Optional[float] = None, units: str = "m") -> list:
    """Motions from a generation folder (in metres, as generated) or a joints .npy (in `units`)."""
    source = Path(source)
    if source.is_dir():
        if not (source / GENERATION_FILE).is_file():
            raise UserError(
                f"'{source}' is not a generation folder (no {GENERATION_FILE}); give one, or a joints .npy."
            )
        return read_generation(source, fps)
    if source.suffix != ".npy":
        raise UserError(f"'{source}' is neither a generation folder nor a .npy of joints; give one of those.")
    return read_npy(source, fps, units)


def check_export(export_cfg: Optional[DictConfig], mesh: bool, smpl_cfg: DictConfig, joint_names) -> None:
    """Every export option, before anything is generated or written: a UserError naming the first wrong one."""
    smpl_tree = tuple(joint_names) == SMPL22_NAMES
    needs_model = mesh or (export_cfg is not None and export_cfg.format == "smpl")
    if needs_model and not smpl_tree:
        raise UserError("SMPL export and render=mesh need motions on the 22-joint SMPL tree; use export=bvh.")
    if needs_model:
        model_file(smpl_cfg.model_path, smpl_cfg.gender)
    if export_cfg is None:
        return
    if export_cfg.format not in ("bvh", "smpl"):
        raise UserError(f"export format '{export_cfg.format}' is not one of bvh, smpl; use export=bvh or export=smpl.")
    if export_cfg.format == "smpl" and export_cfg.up not in UPS:
        raise UserError(f"export.up={export_cfg.up} is not one of {', '.join(UPS)}; z is AMASS's, y ours.")
    if export_cfg.format == "bvh":
        check_order(export_cfg.order)
    if export_cfg.format == "bvh" and export_cfg.skeleton:
        if not smpl_tree:
            raise UserError("retargeting (export.skeleton=) needs motions on the 22-joint SMPL tree; drop it.")
        target = load_bvh_hierarchy(export_cfg.skeleton).skeleton
        choose_joint_map(target.names, export_cfg.joint_map, f"BVH file '{export_cfg.skeleton}'")


def export_motions(
    motions: list, out_dir: Path, export_cfg: Optional[DictConfig], mesh: bool, smpl_cfg: DictConfig
) -> list:
    """Write each motion in the chosen format (and its mesh video); return one record per motion."""
    for joint_names in {motion.joint_names for motion in motions}:
        check_export(export_cfg, mesh, smpl_cfg, joint_names)
    smpl = export_cfg is not None and export_cfg.format == "smpl"
    model = load_smpl(smpl_cfg.model_path, smpl_cfg.gender) if smpl or mesh else None  # read once
    up = export_cfg.up if smpl else "y"
    out_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for motion in motions:
        record = {"motion": motion.name, "frames": len(motion.positions), "fps": motion.fps, "caption": motion.caption}
        params = solve(motion.positions, motion.fps, model, up, smpl_cfg.gender) if model is not None else None
        if smpl:
            path = write_smpl_npz(out_dir / f"{motion.name}.smpl.npz", params)
            log.info("SMPL parameters: %s (%s up)", path, up)
            record.update({"smpl": path.name, "up": up})
        elif export_cfg is not None:
            record.update(export_bvh(motion, out_dir, export_cfg))
        if mesh:
            obj_folder = out_dir / f"{motion.name}_obj" if smpl_cfg.obj else None
            video = render_mesh(model, params, up, out_dir / f"{motion.name}_mesh.mp4", motion.caption, obj_folder)
            record["mesh_video"] = video.name
        records.append(record)
    return records


def export_bvh(motion: Motion, out_dir: Path, export_cfg: DictConfig) -> dict:
    """Write one motion as BVH, on its own skeleton or retargeted onto export.skeleton; a record of it."""
    path = out_dir / f"{motion.name}.bvh"
    if export_cfg.skeleton:
        written = retarget_to_bvh(path, motion.positions, export_cfg.skeleton, export_cfg.joint_map, motion.fps)
        log.info("BVH on %s: %s", Path(export_cfg.skeleton).name, written.describe())
        return {
            "bvh": written.path.name,
            "skeleton": str(export_cfg.skeleton),
            "joint_map": written.joint_map,
            "median_angle_deg": written.median_angle_deg,
            "max_angle_deg": written.max_angle_deg,
        }
    written = positions_to_bvh(path, motion.positions, motion.joint_names, motion.parents, motion.fps, export_cfg.order)
    log.info("BVH: %s", written.describe())
    return {
        "bvh": written.path.name,
        "order": export_cfg.order,
        "max_error_m": written.max_error_m,
        "bone_drift": written.bone_drift,
    }


def write_summary(out_dir: Path, source: str, export_cfg: Optional[DictConfig], records: list) -> Path:
    """export.json: the input, the format and what each motion became."""
    path = out_dir / EXPORT_FILE
    if path.exists():
        raise UserError(f"'{path}' already exists; exports are never overwritten.")
    summary = {"input": source, "format": None if export_cfg is None else dict(export_cfg), "motions": records}
    path.write_text(json.dumps(summary, indent=2, default=str))
    return path


def run(cfg: DictConfig) -> list:
    """Export every motion of cfg.input into this export's folder."""
    out_dir = Path(cfg.paths.output_dir)
    export_cfg, mesh = cfg.get("export"), cfg.render == "mesh"
    if cfg.render not in (False, "mesh"):
        raise UserError(
            f"render={cfg.render} is not an export option; use render=mesh (a shaded SMPL video) or drop it."
        )
    motions = read_motions(cfg.input, cfg.fps, cfg.units)
    if not motions:
        raise UserError(f"'{cfg.input}' holds no motions to export.")
    records = export_motions(motions, out_dir, export_cfg, mesh, cfg.smpl)
    write_summary(out_dir, str(cfg.input), export_cfg, records)
    log.info("Exported %d motion(s) to %s", len(records), out_dir)
    return records

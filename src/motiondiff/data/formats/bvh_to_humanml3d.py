"""BVH motion capture -> one motion in the HumanML3D layout (joints, 263 features, caption).

`bvh_to_joints22` loads a clip, resamples it to 20 fps, runs forward kinematics and keeps the 22
SMPL joints through a joint map (Mixamo or CMU naming), in metres, y up (a z-up file is turned).
`convert_bvh_to_humanml3d` turns those into features as the dataset does (retargeted to the dataset's
reference skeleton by default) and writes `new_joint_vecs/<id>.npy`, `new_joints/<id>.npy` (the joints
recovered from the features, as in the dataset) and `texts/<id>.txt` under an output root.
"""

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from omegaconf import DictConfig

from motiondiff.core.errors import UserError
from motiondiff.data.formats.bvh import JOINT_MAPS, load_bvh, resample
from motiondiff.data.kinematics.skeleton import SMPL22_NAMES, SMPL22_PARENTS, forward_kinematics
from motiondiff.data.representations import humanml3d_features as hml
from motiondiff.text.pos_tags import tag_caption

log = logging.getLogger(__name__)


def _inverted(mapping: dict) -> dict:
    """{body joint: source joint} from a {source joint: body joint} map."""
    return {body: source for source, body in mapping.items()}


# SMPL22 joint -> where it is in the source skeleton: a joint name, or (name_a, name_b, t) for the
# point a fraction t of the way from joint a to joint b (for joints the source skeleton lacks).
SMPL22_JOINT_MAPS = {
    "mixamo": {**_inverted(JOINT_MAPS["mixamo"]), "spine1": "Spine", "spine2": "Spine1"},
    # CMU: LowerBack, Neck and the shoulders have zero offsets (they sit on Hips and Spine1), so
    # spine2 and the collars are put between their neighbours to keep every bone longer than zero.
    "cmu": {
        **_inverted(JOINT_MAPS["cmu"]),
        "spine1": "Spine",
        "spine2": ("Spine", "Spine1", 0.5),
        "left_collar": ("Spine1", "LeftArm", 0.5),
        "right_collar": ("Spine1", "RightArm", 0.5),
    },
}
assert all(set(mapping) == set(SMPL22_NAMES) for mapping in SMPL22_JOINT_MAPS.values())
# Legs (hip to ankle, metres) that `scale="auto"` accepts as already human-sized in metres or centimetres.
_HUMAN_LEG_METRES = (0.5, 1.2)
_REFERENCE_LEG = float(sum(hml.REFERENCE_BONE_LENGTHS[joint - 1] for joint in hml.LEG_JOINTS))


def _sources(spec) -> tuple:
    """The source joint names one map entry uses."""
    return (spec,) if isinstance(spec, str) else spec[:2]


def _missing(mapping: dict, names) -> list:
    """'body (source)' for each SMPL22 joint the map cannot place in a skeleton with joint `names`."""
    return [
        f"{body} ({'/'.join(_sources(mapping[body]))})"
        for body in SMPL22_NAMES
        if any(name not in names for name in _sources(mapping[body]))
    ]


def choose_joint_map(names, joint_map: str, source: str) -> str:
    """The SMPL22 joint map to use for a skeleton with joint `names` ('auto' picks the first that fits)."""
    if joint_map not in (*SMPL22_JOINT_MAPS, "auto"):
        valid = ", ".join(["auto", *SMPL22_JOINT_MAPS])
        raise UserError(f"Unknown joint_map '{joint_map}' for {source}; use one of: {valid}.")
    candidates = list(SMPL22_JOINT_MAPS) if joint_map == "auto" else [joint_map]
    missing = {key: _missing(SMPL22_JOINT_MAPS[key], set(names)) for key in candidates}
    fitting = [key for key in candidates if not missing[key]]
    if fitting:
        return fitting[0]
    closest = min(candidates, key=lambda key: len(missing[key]))
    raise UserError(
        f"{source} is not a human skeleton that maps onto the 22 SMPL joints: it lacks {len(missing[closest])} body "
        f"joints under joint map '{closest}': {', '.join(missing[closest])}; use a humanoid BVH with Mixamo or CMU "
        "joint names."
    )


def map_joints(positions: np.ndarray, names, mapping: dict) -> np.ndarray:
    """The SMPL22 joints (T, 22, 3) of source positions (T, J, 3) through a SMPL22 joint map."""
    index = {name: i for i, name in enumerate(names)}
    joints = []
    for body in SMPL22_NAMES:
        spec = mapping[body]
        if isinstance(spec, str):
            joints.append(positions[:, index[spec]])  # (T, 3)
        else:
            first, second, fraction = spec
            joints.append((1 - fraction) * positions[:, index[first]] + fraction * positions[:, index[second]])
    return np.stack(joints, axis=1)  # (T, 22, 3)


def leg_length(joints: np.ndarray) -> float:
    """Hip-to-ankle length of the right leg in the first frame (the bones the dataset scales by)."""
    return float(sum(np.linalg.norm(joints[0, j] - joints[0, SMPL22_PARENTS[j]]) for j in hml.LEG_JOINTS))


def metres_per_unit(joints: np.ndarray, scale, source: str) -> float:
    """The factor from file units to metres: `scale` itself, or for 'auto' metres or centimetres when
    that makes the legs human-sized, else whatever gives the dataset's reference leg length."""
    if scale != "auto":
        if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not 0 < scale < float("inf"):
            raise UserError(f"scale must be 'auto' or a positive number (metres per file unit), got {scale!r}.")
        return float(scale)
    leg = leg_length(joints)
    if leg <= 0:
        raise UserError(f"{source} has legs of zero length in its first frame; check the file.")
    low, high = _HUMAN_LEG_METRES
    for unit, unit_name in ((1.0, "metres"), (0.01, "centimetres")):
        if low <= leg * unit <= high:
            log.info("%s: units taken as %s (leg %.3f m)", source, unit_name, leg * unit)
            return unit
    log.info("%s: leg %.3g file units is no human size in m or cm; scaled to a %.3f m leg", source, leg, _REFERENCE_LEG)
    return _REFERENCE_LEG / leg


# (x, y, z) -> (x, z, -y): a rotation (left stays left) that stands a z-up body up along y.
_Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
_UPRIGHT = 0.75  # the spine's share along an axis to read it as that axis: within 41 degrees, so at most one axis


def spine_direction(joints: np.ndarray) -> np.ndarray:
    """The mean unit vector (3,) from pelvis to head of joints (T, 22, 3); zeros where the two coincide."""
    spine = joints[:, SMPL22_NAMES.index("head")] - joints[:, SMPL22_NAMES.index("pelvis")]  # (T, 3)
    length = np.linalg.norm(spine, axis=-1, keepdims=True)
    return (spine / np.maximum(length, 1e-12)).mean(0)


def upright_axis(direction: np.ndarray) -> Optional[str]:
    """'y' or 'z' when `direction` (3,) points up that axis (within 41 degrees), else None."""
    return next((axis for axis, index in (("y", 1), ("z", 2)) if direction[index] > _UPRIGHT), None)


def up_axis_of(rest: np.ndarray, motion: np.ndarray, source: str, setting: str = "up_axis") -> str:
    """'y' or 'z': the vertical axis of a file whose skeleton stands as `rest` (1, 22, 3) (its OFFSETs) and moves as
    `motion` (T, 22, 3): the axis both stand up along, or the one the rest pose does while the motion's spine leans
    (a crawl). UserError, naming `setting`, when they stand along different axes or neither stands up."""
    rest_dir, motion_dir = spine_direction(rest), spine_direction(motion)
    standing, moving = upright_axis(rest_dir), upright_axis(motion_dir)
    if standing is not None and moving in (None, standing):
        return standing
    if standing is None and moving is not None:
        return moving
    shown = ", ".join(f"{v:.2f}" for v in motion_dir)
    rest_shown = ", ".join(f"{v:.2f}" for v in rest_dir)
    raise UserError(
        f"{source}: its skeleton stands along ({rest_shown}) but its motion's spine points along ({shown}), so its "
        f"vertical axis is unclear; set {setting}=y or {setting}=z (only y-up and z-up files are read)."
    )


def bvh_to_joints22(
    path, joint_map: str = "auto", scale="auto", up_axis: str = "auto", setting: str = "up_axis"
) -> np.ndarray:
    """The 22 SMPL joints (T, 22, 3) of a BVH file: metres (see `metres_per_unit`), y up, 20 fps.

    `up_axis` is the file's vertical axis: 'y' (the BVH convention), 'z' (turned to y up), or 'auto' (`up_axis_of`:
    read from the skeleton's rest pose and the motion). `setting` names the option in messages.
    """
    source = f"BVH file '{path}'"
    if up_axis not in ("auto", "y", "z"):
        raise UserError(f"{setting} must be 'auto', 'y' or 'z', got {up_axis!r}; set it to the file's vertical axis.")
    clip = resample(load_bvh(path), hml.FPS)
    key = choose_joint_map(clip.skeleton.names, joint_map, source)
    mapping, names = SMPL22_JOINT_MAPS[key], clip.skeleton.names
    joints = map_joints(clip.positions(), names, mapping)  # (T, 22, 3)
    if up_axis == "auto":
        count = len(names)
        rest = forward_kinematics(
            clip.skeleton.parents, np.tile(np.eye(3), (1, count, 1, 1)), clip.skeleton.offsets[None]
        )
        up_axis = up_axis_of(map_joints(rest, names, mapping), joints, source, setting)  # rest: (1, 22, 3)
    if up_axis == "z":
        joints = joints @ _Z_UP_TO_Y_UP.T  # (T, 22, 3)
    lengths = np.linalg.norm(joints[0, 1:] - joints[0, list(SMPL22_PARENTS[1:])], axis=-1)  # (21,)
    if (lengths < 1e-6 * lengths.max()).any():
        short = [SMPL22_NAMES[j + 1] for j in np.flatnonzero(lengths < 1e-6 * lengths.max())]
        raise UserError(f"{source}: joint map '{key}' gives zero-length bones into {', '.join(short)}; fix the map.")
    if len(joints) < 2:
        raise UserError(f"{source} is shorter than two frames at {hml.FPS} fps; use a longer clip.")
    return joints * metres_per_unit(joints, scale, source)


def caption_line(caption: Optional[str]) -> str:
    """One HumanML3D annotation line, `caption#lemma/POS ...#0.0#0.0` (the whole clip; tags by text.pos_tags)."""
    caption = " ".join(str(caption if caption is not None else "").split())
    if not caption:
        raise UserError('The caption is empty; give the motion a caption, e.g. caption="a person walks in a circle".')
    if "#" in caption:
        raise UserError(
            f"The caption '{caption}' contains '#', which separates the fields of a HumanML3D caption line; remove it."
        )
    tokens = " ".join(tag_caption(caption))
    return f"{caption}#{tokens}#0.0#0.0"


@dataclass
class ConvertedMotion:
    """Where one converted motion was written, and its length in feature frames."""

    motion_id: str
    frames: int
    features_path: Path
    joints_path: Path
    text_path: Path


def convert_bvh_to_humanml3d(
    bvh_path,
    out_root,
    caption: Optional[str],
    motion_id=None,
    joint_map: str = "auto",
    scale="auto",
    retarget: bool = True,
    feet_threshold: float = 0.002,
    up_axis: str = "auto",
) -> ConvertedMotion:
    """Write one BVH clip under `out_root` in the HumanML3D layout; never overwrites an existing id.

    `retarget` puts the motion on the dataset's reference skeleton (`REFERENCE_OFFSETS`), as the
    dataset does for every motion; otherwise the clip keeps its own bone lengths.
    """
    line = caption_line(caption)
    motion_id = str(motion_id) if motion_id not in (None, "") else Path(bvh_path).stem
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", motion_id) or motion_id.startswith("."):
        raise UserError(f"motion_id '{motion_id}' is not a plain file name; use letters, digits, '_', '-' or '.'.")
    out_root = Path(out_root)
    paths = {
        "features": out_root / "new_joint_vecs" / f"{motion_id}.npy",
        "joints": out_root / "new_joints" / f"{motion_id}.npy",
        "text": out_root / "texts" / f"{motion_id}.txt",
    }
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing:
        raise UserError(
            f"Motion '{motion_id}' already exists under {out_root} ({', '.join(existing)}); "
            "choose another motion_id or remove it."
        )
    joints = bvh_to_joints22(bvh_path, joint_map, scale, up_axis)  # (T, 22, 3)
    offsets = hml.REFERENCE_OFFSETS if retarget else None
    features = hml.joints_to_features(joints, feet_threshold=feet_threshold, target_offsets=offsets)  # (T-1, 263)
    recovered = hml.features_to_joints(features)  # (T-1, 22, 3)
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    np.save(paths["features"], features.astype(np.float32))
    np.save(paths["joints"], recovered.astype(np.float32))
    paths["text"].write_text(line + "\n", encoding="utf-8")
    log.info("Wrote motion '%s' (%d frames at %d fps) under %s", motion_id, len(features), hml.FPS, out_root)
    return ConvertedMotion(motion_id, len(features), paths["features"], paths["joints"], paths["text"])


def run(cfg: DictConfig) -> ConvertedMotion:
    """`motiondiff-convert-bvh`: write new_joint_vecs/, new_joints/, texts/ files of `cfg.bvh` under `cfg.out_root`."""
    if not cfg.bvh:
        raise UserError("No BVH file given; set bvh=path/to/clip.bvh.")
    motion = convert_bvh_to_humanml3d(
        cfg.bvh,
        cfg.out_root,
        cfg.caption,
        motion_id=cfg.motion_id,
        joint_map=cfg.joint_map,
        scale=cfg.scale,
        retarget=cfg.retarget,
        feet_threshold=cfg.feet_threshold,
        up_axis=cfg.up_axis,
    )
    log.info("Features: %s (%d frames)", motion.features_path, motion.frames)
    return motion

"""Joint positions (a generated or dataset motion) -> a BVH file on a skeleton built from the motion.

`positions_to_bvh` builds a rest skeleton (bones at their median lengths, in a T-pose for the known
trees), solves local rotations by inverse kinematics (`data.kinematics.inverse`) and writes them.
Positions are metres, y up, as generation writes them for every dataset (KIT-ML's millimetres are
converted when joints are recovered from features). KIT-ML's are a mirror image of the capture: they
are mirrored back (x -> -x), so the file's L joints are on the body's left. The result says how far
the file's motion is from the input: exact wherever the input keeps its bone lengths, off by about
the bone-length drift elsewhere.
"""

import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from motiondiff.core.errors import UserError
from motiondiff.data.formats.bvh_write import check_order, write_bvh
from motiondiff.data.kinematics.inverse import reconstruct, rest_offsets, solve_rotations
from motiondiff.data.kinematics.skeleton import (
    KIT21_NAMES,
    KIT21_PARENTS,
    SMPL22_NAMES,
    SMPL22_PARENTS,
    Skeleton,
    bone_lengths,
)

# T-pose rest directions of the bone into each joint, the body facing +z with its left at +x: legs -y,
# spine, neck and head +y, arms along +-x, feet (ankle -> ball of the foot) +z. The sibling groups (the
# pelvis's hips and spine, the chest's neck and collars) keep the motion's own shape, turned to fit these.
SMPL22_TPOSE = np.array(
    [
        [0.0, 0.0, 0.0],  # pelvis (root)
        [0.7, -0.7, 0.0],  # left_hip
        [-0.7, -0.7, 0.0],  # right_hip
        [0.0, 1.0, 0.0],  # spine1
        [0.0, -1.0, 0.0],  # left_knee
        [0.0, -1.0, 0.0],  # right_knee
        [0.0, 1.0, 0.0],  # spine2
        [0.0, -1.0, 0.0],  # left_ankle
        [0.0, -1.0, 0.0],  # right_ankle
        [0.0, 1.0, 0.0],  # spine3
        [0.0, 0.0, 1.0],  # left_foot
        [0.0, 0.0, 1.0],  # right_foot
        [0.0, 1.0, 0.0],  # neck
        [0.55, 0.85, 0.0],  # left_collar
        [-0.55, 0.85, 0.0],  # right_collar
        [0.0, 1.0, 0.0],  # head
        [1.0, 0.0, 0.0],  # left_shoulder
        [-1.0, 0.0, 0.0],  # right_shoulder
        [1.0, 0.0, 0.0],  # left_elbow
        [-1.0, 0.0, 0.0],  # right_elbow
        [1.0, 0.0, 0.0],  # left_wrist
        [-1.0, 0.0, 0.0],  # right_wrist
    ]
)
# The same for KIT-ML once mirrored back (L joints at +x): root, back (BP BT BLN BUN), arms, legs, feet.
KIT21_TPOSE = np.array(
    [[0.0, 0.0, 0.0]]  # root
    + [[0.0, 1.0, 0.0]] * 4  # BP BT BLN BUN
    + [[1.0, 0.0, 0.0]] * 3  # LS LE LW
    + [[-1.0, 0.0, 0.0]] * 3  # RS RE RW
    + [[1.0, -0.7, 0.0], [0.0, -1.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]  # LH LK LA LMrot LF
    + [[-1.0, -0.7, 0.0], [0.0, -1.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]  # RH RK RA RMrot RF
)


@dataclass(frozen=True)
class KnownTree:
    """A joint tree the exporter recognises: its T-pose, and whether its positions are a mirror image."""

    names: tuple
    parents: tuple
    tpose: np.ndarray  # (J, 3) rest directions of the bones
    mirrored: bool  # the input is a mirror image: x is negated to undo it


KNOWN_TREES = (
    KnownTree(SMPL22_NAMES, SMPL22_PARENTS, SMPL22_TPOSE, False),
    KnownTree(KIT21_NAMES, KIT21_PARENTS, KIT21_TPOSE, True),
)


@dataclass(frozen=True)
class BvhExport:
    """What `positions_to_bvh` wrote, and how faithful it is to the input."""

    path: Path
    frames: int
    fps: float
    joints: int
    max_error_m: float  # max over frames and joints of |FK(written motion) - input|, metres
    bone_drift: float  # max over the input's bones of (max - min) / median length: 0 for rigid bones

    def describe(self) -> str:
        """One line for a command to print."""
        return (
            f"{self.path}: {self.frames} frames at {self.fps:g} fps, {self.joints} joints; largest distance to the "
            f"input {self.max_error_m * 1000:.2f} mm (bone lengths drift up to {100 * self.bone_drift:.1f}%)"
        )


def known_tree(names, parents) -> Optional[KnownTree]:
    """The known tree with exactly these joint names and parents, else None."""
    return next((t for t in KNOWN_TREES if tuple(names) == t.names and tuple(parents) == t.parents), None)


def bone_drift(positions: np.ndarray, parents) -> float:
    """Max over bones of (max - min) / median length over the frames of positions (T, J, 3); 0 without bones."""
    lengths = bone_lengths(positions, parents)  # (T, B)
    median = np.median(lengths, axis=0)  # (B,)
    spread = lengths.max(axis=0) - lengths.min(axis=0)
    return float(np.max(spread / np.maximum(median, 1e-12), initial=0.0))


def checked_positions(positions, names, parents) -> np.ndarray:
    """positions as float64 (T, J, 3), or a one-sentence UserError."""
    positions = np.asarray(positions, dtype=np.float64)
    if positions.ndim != 3 or positions.shape[-1] != 3 or len(positions) == 0:
        raise UserError(f"positions have shape {positions.shape}; expected (frames > 0, joints, 3).")
    if not (len(names) == len(parents) == positions.shape[1]):
        raise UserError(
            f"positions have {positions.shape[1]} joints but names and parents list {len(names)} and {len(parents)}."
        )
    if parents[0] != -1 or any(not -1 < p < j for j, p in enumerate(parents) if j > 0):
        raise UserError("parents must start with -1 (the root) and name an earlier joint for every other joint.")
    if not np.isfinite(positions).all():
        frame = int(np.flatnonzero(~np.isfinite(positions).reshape(len(positions), -1).all(axis=1))[0])
        raise UserError(f"The motion has NaN or infinite positions (first in frame {frame}); fix it before exporting.")
    return positions


def positions_to_bvh(
    path,
    positions: np.ndarray,  # (T, J, 3) metres, y up (KIT-ML: mirrored, as its dataset is)
    names,
    parents,
    fps: float,
    order: str = "ZXY",
    rest_directions: Optional[np.ndarray] = None,  # (J, 3) the rest pose's bone directions; default T-pose
    units_per_metre: float = 1.0,  # the file's units: 1 for metres, 100 for centimetres
) -> BvhExport:
    """Write the motion as a new BVH file: rest skeleton, inverse kinematics, Euler channels in `order`."""
    check_order(order)
    positions = checked_positions(positions, names, parents)
    if (
        isinstance(units_per_metre, bool)
        or not isinstance(units_per_metre, numbers.Real)
        or not (math.isfinite(units_per_metre) and units_per_metre > 0)
    ):
        raise UserError(f"units_per_metre must be a positive number (100 for centimetres), got {units_per_metre!r}.")
    if Path(path).exists():
        raise UserError(f"'{path}' already exists: BVH export never overwrites a file; give a new path.")
    tree = known_tree(names, parents)
    metres = positions * np.array([-1.0, 1.0, 1.0]) if tree is not None and tree.mirrored else positions
    directions = rest_directions if rest_directions is not None else (tree.tpose if tree else None)
    if directions is not None and np.shape(directions) != (len(parents), 3):
        raise UserError(f"rest_directions has shape {np.shape(directions)}; expected ({len(parents)}, 3).")
    offsets = rest_offsets(metres, parents, directions)  # (J, 3)
    local = solve_rotations(metres, parents, offsets)  # (T, J, 3, 3)
    error = np.linalg.norm(reconstruct(local, parents, offsets, metres[:, 0]) - metres, axis=-1).max()
    skeleton = Skeleton(tuple(names), tuple(parents), offsets * units_per_metre)
    written = write_bvh(path, skeleton, local, metres[:, 0] * units_per_metre, fps, order)
    return BvhExport(written, len(positions), float(fps), len(parents), float(error), bone_drift(metres, parents))

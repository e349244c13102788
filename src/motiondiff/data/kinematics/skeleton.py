"""Kinematic trees, forward kinematics and the 20-joint body set used by the dance experiment.

Arrays here are numpy: positions (frames, joints, 3), local rotation matrices
(frames, joints, 3, 3). A parent index of -1 marks the root; parents always come
before their children.
"""

from dataclasses import dataclass

import numpy as np

# The 22-joint SMPL / HumanML3D tree (names and parents, in the dataset's order).
SMPL22_NAMES = (
    "pelvis",
    "left_hip",
    "right_hip",
    "spine1",
    "left_knee",
    "right_knee",
    "spine2",
    "left_ankle",
    "right_ankle",
    "spine3",
    "left_foot",
    "right_foot",
    "neck",
    "left_collar",
    "right_collar",
    "head",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
)
SMPL22_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)

# The 21-joint KIT-ML tree: the MMM joint names (back: pelvis, thorax, lower and upper neck; shoulder,
# elbow, wrist; hip, knee, ankle, metatarsal, toe) in the dataset's order. KIT-ML positions are a mirror
# image of the capture (its y-up conversion swapped y and z), so in KIT-ML space the "L" joints sit on the
# body's right: LH (11) is the right hip and LS (5) the right shoulder, as the dataset's own code labels them.
KIT21_NAMES = (
    "root",
    "BP",
    "BT",
    "BLN",
    "BUN",
    "LS",
    "LE",
    "LW",
    "RS",
    "RE",
    "RW",
    "LH",
    "LK",
    "LA",
    "LMrot",
    "LF",
    "RH",
    "RK",
    "RA",
    "RMrot",
    "RF",
)
KIT21_PARENTS = (-1, 0, 1, 2, 3, 3, 5, 6, 3, 8, 9, 0, 11, 12, 13, 14, 0, 16, 17, 18, 19)

# The 20-joint body set: SMPL22 without spine1 and spine2 (the chest, spine3, hangs off the pelvis).
BODY20_NAMES = tuple(n for n in SMPL22_NAMES if n not in ("spine1", "spine2"))


@dataclass(frozen=True)
class Skeleton:
    """Joint names, parent indices and rest offsets (joint relative to its parent)."""

    names: tuple
    parents: tuple
    offsets: np.ndarray  # (joints, 3); the root's offset is its rest position

    def __post_init__(self):
        assert len(self.names) == len(self.parents) == len(self.offsets), "names/parents/offsets differ in length"
        assert all(p < j for j, p in enumerate(self.parents)), "every parent must come before its child"

    @property
    def num_joints(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def bones(self) -> list:
        """(parent, child) index pairs, one per non-root joint."""
        return [(p, j) for j, p in enumerate(self.parents) if p >= 0]


def subset_parents(parents, keep) -> tuple:
    """Parents of the kept joints, re-indexed: each joint hangs off its nearest kept ancestor."""
    position = {old: new for new, old in enumerate(keep)}
    result = []
    for old in keep:
        parent = parents[old]
        while parent >= 0 and parent not in position:
            parent = parents[parent]
        result.append(position[parent] if parent >= 0 else -1)
    return tuple(result)


def with_ancestors(parents, joints) -> tuple:
    """The joints and every joint above them, in index order (parents first, when the file lists them so)."""
    closed = set()
    for joint in joints:
        while joint >= 0 and joint not in closed:
            closed.add(joint)
            joint = parents[joint]
    return tuple(sorted(closed))


BODY20_PARENTS = subset_parents(SMPL22_PARENTS, [SMPL22_NAMES.index(n) for n in BODY20_NAMES])


def forward_kinematics(
    parents,
    local_rotations: np.ndarray,  # (frames, joints, 3, 3)
    local_translations: np.ndarray,  # (frames, joints, 3): offsets, and the root's position for the root
) -> np.ndarray:
    """Global joint positions (frames, joints, 3) from local rotations and translations."""
    frames, joints = local_rotations.shape[:2]
    assert local_translations.shape == (frames, joints, 3), local_translations.shape
    global_rotations = np.empty_like(local_rotations)
    positions = np.empty((frames, joints, 3), dtype=local_translations.dtype)
    for j, p in enumerate(parents):
        if p < 0:
            global_rotations[:, j] = local_rotations[:, j]
            positions[:, j] = local_translations[:, j]
        else:
            global_rotations[:, j] = global_rotations[:, p] @ local_rotations[:, j]
            positions[:, j] = positions[:, p] + np.einsum(
                "tab,tb->ta", global_rotations[:, p], local_translations[:, j]
            )
    return positions


def mean_acceleration(keypoints: np.ndarray) -> float:
    """Mean magnitude of the second frame difference of (..., frames, joints, dims) keypoints."""
    acceleration = np.diff(keypoints, n=2, axis=-3)
    return float(np.linalg.norm(acceleration, axis=-1).mean())


def bone_lengths(positions: np.ndarray, parents) -> np.ndarray:
    """Length of each bone per frame: (frames, bones), bones in `Skeleton.bones()` order."""
    pairs = [(p, j) for j, p in enumerate(parents) if p >= 0]
    parent_idx, child_idx = zip(*pairs)
    return np.linalg.norm(positions[..., list(child_idx), :] - positions[..., list(parent_idx), :], axis=-1)

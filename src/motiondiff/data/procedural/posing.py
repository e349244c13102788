"""The posing kit shared by the procedural generators: per-joint angles -> joint positions on a body.

Angles are degrees per joint (about y, about x, about z), composed as intrinsic "YXZ" (yaw, then
pitch, then roll), in arrays (frames, joints, 3). The rest pose is a T-pose facing +z with the
body's left at +x; the sign conventions of the limb helpers are written for the left side and
mirrored for the right. Bodies are posed with the shared forward kinematics, so every bone keeps
its length exactly.
"""

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from motiondiff.data.kinematics.skeleton import forward_kinematics

SIDES = ("left", "right")
SIDE_SIGN = {"left": 1.0, "right": -1.0}
YAW, PITCH, ROLL = 0, 1, 2  # angle channels: about y, about x, about z


def smoothstep(x):
    """3x^2 - 2x^3 on [0, 1], clamped outside."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


@dataclass(frozen=True)
class Body:
    """A body to pose: joint names, parents and rest offsets (joint relative to its parent, metres)."""

    names: tuple
    parents: tuple
    rest_offsets: np.ndarray  # (joints, 3); the pelvis entry is its rest position

    def __post_init__(self):
        assert len(self.names) == len(self.parents) == len(self.rest_offsets), "names/parents/offsets differ in length"

    @property
    def joint(self) -> dict:
        """Index of each joint name."""
        return {name: index for index, name in enumerate(self.names)}

    def zeros(self, frames: int) -> np.ndarray:
        """The rest pose's angles (frames, joints, 3)."""
        return np.zeros((frames, len(self.names), 3))

    def leg(self, angles, side, flex=0.0, abduct=0.0, knee=0.0, twist=0.0) -> None:
        """Add hip flexion (thigh forward), abduction (foot outward), knee flexion and an outward twist to one leg."""
        s, j = SIDE_SIGN[side], self.joint
        angles[:, j[f"{side}_hip"], PITCH] += -np.asarray(flex)
        angles[:, j[f"{side}_hip"], ROLL] += s * np.asarray(abduct)
        angles[:, j[f"{side}_hip"], YAW] += s * np.asarray(twist)
        angles[:, j[f"{side}_knee"], PITCH] += knee

    def arm(self, angles, side, raise_=0.0, forward=0.0, across=0.0, elbow=0.0, elbow_up=0.0) -> None:
        """Add to one arm: raise (0 = T-pose, -75 hanging, +165 overhead), forward swing, inward swing, elbow bends."""
        s, j = SIDE_SIGN[side], self.joint
        angles[:, j[f"{side}_shoulder"], ROLL] += s * np.asarray(raise_)
        angles[:, j[f"{side}_shoulder"], PITCH] += -np.asarray(forward)
        angles[:, j[f"{side}_shoulder"], YAW] += -s * np.asarray(across)
        angles[:, j[f"{side}_elbow"], YAW] += -s * np.asarray(elbow)  # forearm forward
        angles[:, j[f"{side}_elbow"], ROLL] += s * np.asarray(elbow_up)  # forearm bends up in the arm's plane

    def flatten_feet(self, angles: np.ndarray) -> np.ndarray:
        """The angles with the ankles set so each foot stays level whatever the pelvis, hip and knee do."""
        angles, j = angles.copy(), self.joint
        for side in SIDES:
            chain = angles[:, [j["pelvis"], j[f"{side}_hip"], j[f"{side}_knee"]]]  # (T, 3, 3)
            angles[:, j[f"{side}_ankle"], PITCH] = -chain[:, :, PITCH].sum(1)
            angles[:, j[f"{side}_ankle"], ROLL] = -chain[:, :, ROLL].sum(1)
        return angles

    def pose(self, angles: np.ndarray) -> np.ndarray:
        """Joint positions (T, J, 3) from angles (T, J, 3) in degrees, the pelvis at its rest position."""
        frames, joints = angles.shape[:2]
        assert joints == len(self.names), (angles.shape, len(self.names))
        rotations = Rotation.from_euler("YXZ", angles.reshape(-1, 3), degrees=True).as_matrix()
        rotations = rotations.reshape(frames, joints, 3, 3)
        translations = np.broadcast_to(self.rest_offsets, (frames, joints, 3)).copy()
        return forward_kinematics(self.parents, rotations, translations)

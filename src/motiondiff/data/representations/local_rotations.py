"""The 3D single dance's features: any BVH skeleton's motion as root motion in its facing frame plus 6D rotations.

Per frame, F = 4 + 6K (+ 3K with positions) for K kept joints:
  [0]            root height (the root joint's up coordinate, the file's units)
  [1:3]          root ground velocity to the next frame, in this frame's facing frame (x, z with the heading removed)
  [3]            root heading velocity: radians about up to the next frame
  [4:4+6K]       each kept joint's local rotation in the continuous 6D form; the root's without its heading
  [4+6K:]        optional: the kept joints' positions in the facing frame, relative to the root's ground point
The last frame repeats the velocities of the frame before. The heading is the twist of the root's rotation about
the up axis (works for any skeleton, a crab as well as a person). Decoding integrates the velocities from an
opening (the root's ground point and heading on frame 0) and runs forward kinematics on the source's offsets,
so bone lengths are the source's by construction; joints that are not kept hold fixed local rotations.
Internally y is up: a z-up file is turned by UP_BASIS["z"] on the way in and back on the way out.
"""

from dataclasses import dataclass

import numpy as np
import torch

from motiondiff.data.kinematics.quaternion import _xp, cont6d_to_matrix, matrix_to_cont6d

# File coordinates -> internal y-up coordinates (rows act on column vectors).
UP_BASIS = {
    "y": np.eye(3),
    "z": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]),  # (x, y, z) -> (x, z, -y)
}


@dataclass(frozen=True)
class RotationLayout:
    """Where each part of a feature vector sits, for K kept joints."""

    kept: tuple  # indices of the kept joints in the file's skeleton (the root first)
    with_positions: bool

    def __post_init__(self):
        assert self.kept and self.kept[0] == 0, "the root (joint 0) must be kept"

    @property
    def features(self) -> int:
        """F: features per frame."""
        return 4 + 6 * len(self.kept) + (3 * len(self.kept) if self.with_positions else 0)

    @property
    def rotations(self) -> slice:
        return slice(4, 4 + 6 * len(self.kept))

    @property
    def positions(self) -> slice:
        assert self.with_positions
        return slice(4 + 6 * len(self.kept), self.features)

    def groups(self) -> list:
        """Feature slices that share one scale (height, ground velocity, heading velocity, each joint, positions)."""
        joints = [slice(4 + 6 * k, 10 + 6 * k) for k in range(len(self.kept))]
        return [slice(0, 1), slice(1, 3), slice(3, 4), *joints, *([self.positions] if self.with_positions else [])]


def yaw_matrix(angle):
    """Rotations (..., 3, 3) by `angle` radians (...) about +y (numpy or torch)."""
    xp = _xp(angle)
    cos, sin, zero, one = xp.cos(angle), xp.sin(angle), xp.zeros_like(angle), xp.ones_like(angle)
    rows = [[cos, zero, sin], [zero, one, zero], [-sin, zero, cos]]
    return xp.stack([xp.stack(row, -1) for row in rows], -2)  # (..., 3, 3)


def twist(rotations):
    """The angle (...) of the twist about +y of rotations (..., 3, 3): 2 atan2(q_y, q_w) of their quaternions."""
    trace = rotations[..., 0, 0] + rotations[..., 1, 1] + rotations[..., 2, 2]
    return 2.0 * _xp(rotations).arctan2(rotations[..., 0, 2] - rotations[..., 2, 0], 1.0 + trace)


def heading(rotations: np.ndarray) -> np.ndarray:
    """The twist about +y of rotations (T, 3, 3), unwrapped over time: (T,) radians."""
    return np.unwrap(twist(rotations))


def forward_kinematics(parents, local_rotations, local_translations):
    """Global positions (..., J, 3) from local rotations (..., J, 3, 3) and translations (..., J, 3); numpy or torch."""
    xp = _xp(local_rotations)
    rotations, positions = [], []
    for joint, parent in enumerate(parents):
        if parent < 0:
            rotations.append(local_rotations[..., joint, :, :])
            positions.append(local_translations[..., joint, :])
        else:
            rotations.append(rotations[parent] @ local_rotations[..., joint, :, :])
            offset = (rotations[parent] @ local_translations[..., joint, :, None])[..., 0]  # (..., 3)
            positions.append(positions[parent] + offset)
    return xp.stack(positions, -2)  # (..., J, 3)


def encode(
    local_rotations: np.ndarray,  # (T, J, 3, 3) the file's local rotations
    root_positions: np.ndarray,  # (T, 3) the root's path, file coordinates
    offsets: np.ndarray,  # (J, 3) each joint's offset from its parent (the root's ignored)
    parents,
    layout: RotationLayout,
    up: str = "y",
) -> np.ndarray:
    """Features (T, F) float64 of a motion (at least two frames)."""
    basis = UP_BASIS[up]
    frames = len(local_rotations)
    assert frames >= 2 and local_rotations.shape[1:] == (len(parents), 3, 3), local_rotations.shape
    root = basis @ local_rotations[:, 0]  # (T, 3, 3) the root's rotation, y up
    path = root_positions @ basis.T  # (T, 3)
    angle = heading(root)  # (T,)
    unturn = yaw_matrix(-angle)  # (T, 3, 3)
    step = np.einsum("tab,tb->ta", unturn[:-1], path[1:] - path[:-1])  # (T-1, 3)
    turn = np.diff(angle)  # (T-1,)
    velocity = np.concatenate([step, step[-1:]])[:, [0, 2]]  # (T, 2)
    turn = np.concatenate([turn, turn[-1:]])[:, None]  # (T, 1)
    rotations = local_rotations[:, list(layout.kept)].copy()  # (T, K, 3, 3)
    rotations[:, 0] = unturn @ root
    parts = [path[:, 1:2], velocity, turn, matrix_to_cont6d(rotations).reshape(frames, -1)]
    if layout.with_positions:
        translations = np.broadcast_to(offsets, (frames, *offsets.shape)).copy()  # (T, J, 3)
        translations[:, 0] = path
        rotations_all = local_rotations.copy()
        rotations_all[:, 0] = root
        positions = forward_kinematics(parents, rotations_all, translations)[:, list(layout.kept)]  # (T, K, 3)
        ground = path * np.array([1.0, 0.0, 1.0])  # (T, 3)
        local = np.einsum("tab,tkb->tka", unturn, positions - ground[:, None])  # (T, K, 3)
        parts.append(local.reshape(frames, -1))
    features = np.concatenate(parts, axis=1)
    assert features.shape == (frames, layout.features), (features.shape, layout.features)
    return features


def decode(
    features,  # (..., T, F) numpy or torch
    offsets,  # (J, 3)
    parents,
    fixed_rotations,  # (J, 3, 3): the local rotations of joints that are not kept
    layout: RotationLayout,
    opening,  # (3,): the root's ground x, ground z and heading on frame 0, internal (y-up) coordinates
    up: str = "y",
) -> tuple:
    """(local rotations (..., T, J, 3, 3), root path (..., T, 3), positions (..., T, J, 3)) in file coordinates."""
    local, root_path, translations = decode_pose(features, offsets, parents, fixed_rotations, layout, opening, up)
    return local, root_path, forward_kinematics(parents, local, translations)


def decode_pose(features, offsets, parents, fixed_rotations, layout: RotationLayout, opening, up: str = "y") -> tuple:
    """`decode` before forward kinematics: (local rotations (..., T, J, 3, 3), root path (..., T, 3), local
    translations (..., T, J, 3): the offsets, the root's path at the root), file coordinates."""
    xp = _xp(features)

    def constant(array):
        array = np.asarray(array, dtype=np.float64)
        return torch.as_tensor(array, dtype=features.dtype, device=features.device) if xp is torch else array

    basis, offsets, fixed, opening = (constant(a) for a in (UP_BASIS[up], offsets, fixed_rotations, opening))
    kept = list(layout.kept)
    height, velocity, turn = features[..., 0], features[..., 1:3], features[..., 3]  # (..., T), (..., T, 2)
    cumulative = xp.cumsum(turn, -1) if xp is np else torch.cumsum(turn, -1)
    angle = opening[2] + cumulative - turn  # (..., T) the heading of each frame: the turns before it
    step = xp.stack([velocity[..., 0], xp.zeros_like(height), velocity[..., 1]], -1)  # (..., T, 3)
    world_step = (yaw_matrix(angle) @ step[..., None])[..., 0]  # (..., T, 3)
    travelled = (xp.cumsum(world_step, -2) if xp is np else torch.cumsum(world_step, -2)) - world_step
    ground = travelled + xp.stack([opening[0], opening[1] * 0, opening[1]])  # (..., T, 3)
    path = xp.concatenate([ground[..., :1], height[..., None], ground[..., 2:]], -1)  # (..., T, 3) y up
    kept_rotations = cont6d_to_matrix(features[..., layout.rotations].reshape(*features.shape[:-1], len(kept), 6))
    untwisted = kept_rotations[..., 0, :, :]  # (..., T, 3, 3): a generated one may hold some heading; drop it
    root = yaw_matrix(angle - twist(untwisted)) @ untwisted  # (..., T, 3, 3) y up, heading = the integrated turns
    shape = (*features.shape[:-1], len(parents), 3, 3)
    local = fixed.expand(shape).clone() if xp is torch else np.broadcast_to(fixed, shape).copy()
    local[..., kept, :, :] = kept_rotations
    local[..., 0, :, :] = basis.T @ root  # back to file coordinates
    root_path = path @ basis  # (..., T, 3): rows times basis = basis.T applied
    translations = offsets.expand(*shape[:-1]).clone() if xp is torch else np.broadcast_to(offsets, shape[:-1]).copy()
    translations[..., 0, :] = root_path
    return local, root_path, translations


def facing_positions(
    features: np.ndarray, offsets, parents, fixed_rotations, layout: RotationLayout, up: str = "y"
) -> np.ndarray:
    """The kept joints (T, K, 3) in each frame's facing frame, relative to the root's ground point (y up)."""
    _, path, positions = decode(features, offsets, parents, fixed_rotations, layout, np.zeros(3), up)  # from origin
    path, positions = path @ UP_BASIS[up].T, positions @ UP_BASIS[up].T  # internal, y up
    turn = features[..., 3]
    angle = np.cumsum(turn, -1) - turn  # (T,) the heading decode gave each frame
    ground = path * np.array([1.0, 0.0, 1.0])  # (T, 3)
    return np.einsum("tab,tkb->tka", yaw_matrix(-angle), positions[:, list(layout.kept)] - ground[:, None])


def opening_of(local_rotations: np.ndarray, root_positions: np.ndarray, up: str = "y") -> np.ndarray:
    """(3,): the root's ground x, z and heading on the first frame, internal y-up coordinates."""
    basis = UP_BASIS[up]
    angle = heading(basis @ local_rotations[:2, 0])[0]
    position = basis @ root_positions[0]
    return np.array([position[0], position[2], angle])

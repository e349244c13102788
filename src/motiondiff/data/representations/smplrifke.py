"""The 205-feature "smplrifke" motion representation (TMR / STMC), recovered to 24 joint positions.

The features live in the AMASS frame: metres, z up, 20 fps; at heading 0 the body faces -y with
its left on +x. One feature frame t holds, in this order (`feature_slices`):

    root_height       (1)   pelvis height above the ground (the lowest joint of the whole clip)
    root_velocity     (2)   pelvis XY displacement t -> t+1, seen in frame t's heading frame
    heading_velocity  (1)   heading change t -> t+1, radians about +z, wrapped to (-pi, pi]
    rotations         (132) 22 SMPL joint rotations as 6D (the first two rows of each matrix); the
                            root's has its heading removed
    joint_positions   (69)  joints 1..23 of the 24 SMPL joints minus the pelvis, XY turned into the
                            heading frame (Z only shifted)

The last frame's velocities continue the previous acceleration (the clip has no frame after it).
`features_to_joints` integrates heading and trajectory from zero (the first frame faces -y, its
pelvis above the origin) and returns joints in this project's frame: y up, facing +z, left on +x,
i.e. AMASS (x, y, z) -> (x, z, -y), a proper rotation. The joint rotations are not needed for
positions and are ignored there.

`joints_to_features` is the inverse on joint positions alone, for tests and conversions: it takes
the heading from the hips (TMR takes it from the SMPL root orientation, which differs by a
near-constant offset) and writes identity rotations unless they are given.
"""

import numpy as np
import torch

from motiondiff.core.errors import UserError
from motiondiff.data.kinematics.skeleton import SMPL22_NAMES, SMPL22_PARENTS

FEATURES = 205
NUM_JOINTS = 24
FPS = 20
SMPL24_NAMES = SMPL22_NAMES + ("left_hand", "right_hand")
SMPL24_PARENTS = SMPL22_PARENTS + (SMPL22_NAMES.index("left_wrist"), SMPL22_NAMES.index("right_wrist"))
IDENTITY_6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # the first two rows of the identity matrix
LEFT_HIP, RIGHT_HIP = SMPL24_NAMES.index("left_hip"), SMPL24_NAMES.index("right_hip")


def feature_slices() -> dict:
    """Name -> slice of each block of a feature frame, in order."""
    sizes = {
        "root_height": 1,
        "root_velocity": 2,
        "heading_velocity": 1,
        "rotations": 22 * 6,
        "joint_positions": (NUM_JOINTS - 1) * 3,
    }
    slices, start = {}, 0
    for name, size in sizes.items():
        slices[name] = slice(start, start + size)
        start += size
    assert start == FEATURES
    return slices


def _rotate_xy(xy, cos, sin):
    """Turn 2D vectors xy (..., 2) by the angle whose cos/sin (...) are given (counter-clockwise)."""
    x, y = xy[..., 0], xy[..., 1]
    return torch.stack([cos * x - sin * y, sin * x + cos * y], -1)  # (..., 2)


def _zup_to_yup(joints):
    """AMASS (x, y, z), z up, facing -y -> (x, z, -y), y up, facing +z."""
    return torch.stack([joints[..., 0], joints[..., 2], -joints[..., 1]], -1)


def _yup_to_zup(joints):
    """The inverse of `_zup_to_yup`."""
    return torch.stack([joints[..., 0], -joints[..., 2], joints[..., 1]], -1)


def _check_features(features) -> None:
    """A UserError unless features have shape (..., frames, 205)."""
    if features.ndim < 2 or features.shape[-1] != FEATURES:
        raise UserError(
            f"smplrifke features must have shape (..., frames, {FEATURES}), got {tuple(features.shape)}; "
            "check the dataset's feature files (smpl_rifke/)."
        )


def features_to_joints(features):
    """Joint positions (..., T, 24, 3), y up, from smplrifke features (..., T, 205).

    numpy in, numpy out (float64 inside); torch in, torch out (any device and dtype, differentiable).
    """
    _check_features(features)
    if not isinstance(features, torch.Tensor):
        dtype = features.dtype if np.issubdtype(features.dtype, np.floating) else np.float64
        joints = features_to_joints(torch.from_numpy(np.asarray(features, dtype=np.float64)))
        return joints.numpy().astype(dtype)
    part = feature_slices()
    height = features[..., part["root_height"]][..., 0]  # (..., T)
    velocity_local = features[..., part["root_velocity"]]  # (..., T, 2)
    turn = features[..., part["heading_velocity"]][..., 0]  # (..., T)
    local = features[..., part["joint_positions"]].unflatten(-1, (NUM_JOINTS - 1, 3))  # (..., T, 23, 3)
    # Frame t's heading is the sum of the turns before it; the last turn leads nowhere.
    heading = torch.cumsum(torch.cat([torch.zeros_like(turn[..., :1]), turn[..., :-1]], -1), -1)  # (..., T)
    cos, sin = torch.cos(heading), torch.sin(heading)  # (..., T)
    velocity = _rotate_xy(velocity_local, cos, sin)  # (..., T, 2) in the world
    steps = torch.cat([torch.zeros_like(velocity[..., :1, :]), velocity[..., :-1, :]], -2)  # (..., T, 2)
    trajectory = torch.cumsum(steps, -2)  # (..., T, 2): pelvis XY, starting at the origin
    joints_xy = _rotate_xy(local[..., :2], cos[..., None], sin[..., None]) + trajectory[..., None, :]  # (..., T, 23, 2)
    joints_z = local[..., 2] + height[..., None]  # (..., T, 23)
    pelvis = torch.cat([trajectory, height[..., None]], -1)[..., None, :]  # (..., T, 1, 3)
    joints = torch.cat([pelvis, torch.cat([joints_xy, joints_z[..., None]], -1)], -2)  # (..., T, 24, 3)
    return _zup_to_yup(joints)


def heading_from_hips(joints_zup: torch.Tensor) -> torch.Tensor:
    """Heading (T,) about +z from the hips of joints (T, 24, 3) in the AMASS frame: 0 when left is +x."""
    across = joints_zup[:, LEFT_HIP, :2] - joints_zup[:, RIGHT_HIP, :2]  # (T, 2)
    return torch.atan2(across[:, 1], across[:, 0])  # (T,)


def _wrap(angle: torch.Tensor) -> torch.Tensor:
    """Angles wrapped to (-pi, pi]."""
    return torch.atan2(torch.sin(angle), torch.cos(angle))


def _extrapolate(deltas: torch.Tensor, wrap=lambda x: x) -> torch.Tensor:
    """Per-frame deltas (T-1, ...) -> (T, ...): the missing last one continues the last acceleration."""
    if len(deltas) < 2:
        return torch.cat([deltas, deltas[-1:]])
    return torch.cat([deltas, wrap(deltas[-1] + wrap(deltas[-1] - deltas[-2]))[None]])


def joints_to_features(joints, heading=None, rotations=None) -> np.ndarray:
    """smplrifke features (T, 205) float32 from joint positions (T, 24, 3), y up as `features_to_joints` returns.

    heading (T,) radians about the AMASS +z (default: from the hips); rotations (T, 22, 6) 6D
    (default: identity, which `features_to_joints` ignores anyway).
    """
    joints = torch.as_tensor(np.asarray(joints, dtype=np.float64))
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3) or len(joints) < 2:
        raise UserError(f"joints must have shape (frames >= 2, {NUM_JOINTS}, 3), got {tuple(joints.shape)}.")
    frames = len(joints)
    zup = _yup_to_zup(joints)  # (T, 24, 3)
    zup = zup - zup.new_tensor([0.0, 0.0, float(zup[..., 2].min())])  # the ground at z = 0
    heading = heading_from_hips(zup) if heading is None else torch.as_tensor(np.asarray(heading, dtype=np.float64))
    assert heading.shape == (frames,), heading.shape
    cos, sin = torch.cos(heading), torch.sin(heading)  # (T,)
    trajectory = zup[:, 0, :2]  # (T, 2)
    velocity = _extrapolate(trajectory[1:] - trajectory[:-1])  # (T, 2)
    velocity_local = _rotate_xy(velocity, cos, -sin)  # (T, 2): turned back by the heading
    turn = _extrapolate(_wrap(heading[1:] - heading[:-1]), wrap=_wrap)  # (T,)
    relative = zup[:, 1:] - zup[:, :1]  # (T, 23, 3)
    local_xy = _rotate_xy(relative[..., :2], cos[:, None], -sin[:, None])  # (T, 23, 2)
    local = torch.cat([local_xy, relative[..., 2:]], -1)  # (T, 23, 3)
    if rotations is None:
        rotations = torch.tensor(IDENTITY_6D, dtype=torch.float64).expand(frames, 22, 6)
    rotations = torch.as_tensor(np.asarray(rotations, dtype=np.float64))
    assert rotations.shape == (frames, 22, 6), rotations.shape
    parts = [zup[:, 0, 2:], velocity_local, turn[:, None], rotations.flatten(1), local.flatten(1)]
    features = torch.cat(parts, -1)  # (T, 205)
    assert features.shape == (frames, FEATURES)
    return features.numpy().astype(np.float32)

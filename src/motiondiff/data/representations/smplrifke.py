"""The 205-feature "smplrifke" motion representation as the course framework writes it, and 24 joint positions.

The features live in the AMASS frame: metres, z up, 20 fps; at heading 0 the body faces -y with
its left on +x. One feature frame t holds, in this order (`feature_slices`):

    root_height       (1)   pelvis z, absolute (no ground is removed)
    root_velocity     (2)   pelvis XY step t-1 -> t, seen in frame t's heading frame; frame 0 holds the
                            absolute first pelvis XY, seen the same way
    heading_velocity  (1)   heading step t-1 -> t, radians about +z; frame 0 holds the absolute first
                            heading. Headings are wrapped to (-pi, pi] and not unwrapped, so a turn
                            across +-pi steps by about 2 pi, which the cumulative sum cancels
    rotations         (132) 22 SMPL joint rotations as 6D (the first two rows of each matrix); the
                            root's has its heading removed
    joint_positions   (69)  joints 1..23 of the 24 joints minus the pelvis, XY turned into frame t's
                            heading frame, Z relative to the pelvis z

This is the convention of the course framework's converter (lab7 / lab-MotionDiT, `utils/rifke_utils.py`:
`smpldata_to_smplrifkefeats` encodes, `smplrifkefeats_to_smpldata` decodes), whose `smpl_rifke/`
files and standardisation tensors follow it; STMC's original (`smplrifke_feats.py`) differs (forward
steps, start at the origin, ground removed). `features_to_joints` decodes as the course does, by
cumulative sums from frame 0 (heading, then pelvis XY), and returns joints in this project's frame:
y up, facing +z, left on +x, i.e. AMASS (x, y, z) -> (x, z, -y), a proper rotation. The joint
rotations are not needed for positions and are ignored there.

`joints_to_features` is the inverse on joint positions, for tests and conversions. The course takes
each frame's heading from the SMPL root orientation (the Z angle of its ZYX Euler decomposition);
with joint positions alone the heading defaults to the direction across the hips (near that angle, up
to a near-constant offset), and a `heading` argument takes the course's angle when it is known.
Rotations are identity unless given.
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
    heading = torch.cumsum(turn, -1)  # (..., T): frame 0 holds the first heading itself
    cos, sin = torch.cos(heading), torch.sin(heading)  # (..., T)
    velocity = _rotate_xy(velocity_local, cos, sin)  # (..., T, 2) in the world
    trajectory = torch.cumsum(velocity, -2)  # (..., T, 2): pelvis XY, frame 0 holds the first one itself
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


def _first_then_steps(values: torch.Tensor) -> torch.Tensor:
    """(T, ...) -> (T, ...): frame 0 keeps its value, frame t holds values[t] - values[t-1]."""
    return torch.cat([values[:1], values[1:] - values[:-1]])


def joints_to_features(joints, heading=None, rotations=None) -> np.ndarray:
    """smplrifke features (T, 205) float32 from joint positions (T, 24, 3), y up as `features_to_joints` returns.

    heading (T,) radians about the AMASS +z, e.g. the Z angle of the SMPL root orientation's ZYX Euler
    decomposition as the course takes it (default: across the hips); rotations (T, 22, 6) 6D
    (default: identity, which `features_to_joints` ignores anyway).
    """
    joints = torch.as_tensor(np.asarray(joints, dtype=np.float64))
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3) or len(joints) < 1:
        raise UserError(f"joints must have shape (frames >= 1, {NUM_JOINTS}, 3), got {tuple(joints.shape)}.")
    frames = len(joints)
    zup = _yup_to_zup(joints)  # (T, 24, 3)
    heading = heading_from_hips(zup) if heading is None else torch.as_tensor(np.asarray(heading, dtype=np.float64))
    if heading.shape != (frames,):
        raise UserError(f"heading must have shape ({frames},), one angle per frame, got {tuple(heading.shape)}.")
    heading = _wrap(heading)  # (T,) in (-pi, pi], never unwrapped
    cos, sin = torch.cos(heading), torch.sin(heading)  # (T,)
    velocity = _first_then_steps(zup[:, 0, :2])  # (T, 2): the first pelvis XY, then its steps
    velocity_local = _rotate_xy(velocity, cos, -sin)  # (T, 2): turned back by frame t's heading
    turn = _first_then_steps(heading)  # (T,): the first heading, then its steps
    relative = zup[:, 1:] - zup[:, :1]  # (T, 23, 3)
    local_xy = _rotate_xy(relative[..., :2], cos[:, None], -sin[:, None])  # (T, 23, 2)
    local = torch.cat([local_xy, relative[..., 2:]], -1)  # (T, 23, 3)
    if rotations is None:
        rotations = torch.tensor(IDENTITY_6D, dtype=torch.float64).expand(frames, 22, 6)
    rotations = torch.as_tensor(np.asarray(rotations, dtype=np.float64))
    if rotations.shape != (frames, 22, 6):
        raise UserError(
            f"rotations must have shape ({frames}, 22, 6), 6D per SMPL joint, got {tuple(rotations.shape)}."
        )
    parts = [zup[:, 0, 2:], velocity_local, turn[:, None], rotations.flatten(1), local.flatten(1)]
    features = torch.cat(parts, -1)  # (T, 205)
    assert features.shape == (frames, FEATURES)
    return features.numpy().astype(np.float32)

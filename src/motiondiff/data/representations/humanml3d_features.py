"""The HumanML3D 263-feature motion representation, in both directions.

`joints_to_features` follows the dataset's own procedure (HumanML3D `process_file`) on joint
positions (T, 22, 3) in metres, y up, 20 fps; `features_to_joints` is its inverse
(`recover_from_ric`). One feature frame t holds, in this order (`feature_slices`):

    root_rot_velocity    (1)   change of the root rotation t -> t+1: half the angle, radians, about +y
                               (the root rotation undoes the facing, so a left turn is negative)
    root_linear_velocity (2)   root XZ displacement t -> t+1, seen in frame t+1's root frame
    root_height          (1)   root y
    ric_positions        (63)  joints 1..21 relative to the root's XZ, seen in the root frame
    rotations            (126) joints 1..21 local rotations, continuous 6D, from inverse kinematics
    local_velocities     (66)  all joints' displacement t -> t+1, seen in frame t's root frame
    foot_contact         (4)   left ankle, left foot, right ankle, right foot: 1 when nearly still

The "root frame" turns the body's facing direction (from the hips and shoulders, smoothed over
time) onto +z. Quirks of the dataset kept for compatibility (its features are what the
statistics and every model were computed on):
- the smoothed facing uses across = (left_hip - right_hip) + (right_shoulder - left_shoulder),
  while the first-frame canonicalisation uses (right_hip - left_hip) + (right_shoulder - left_shoulder)
  (on the sample 012314 the other sign is off by up to 0.54 in the positions);
- the first frame's root rotation is the identity (the canonicalisation made it face +z, up to
  the smoothing), so `features_to_joints(joints_to_features(j))` is `canonicalize_joints(j)[:-1]`;
- the chains starting at spine3 (the arms) take their local rotations relative to the root
  rather than to spine3.
One deliberate difference: the dataset takes the yaw velocity as arcsin of the y component of
the frame-to-frame root quaternion without making its w positive, which flips the sign of that
frame's turn whenever the smoothed facing crosses -z (a half-angle jump from +90 to -90 degrees);
here the quaternion is made w >= 0 first, so turning motions recover correctly. Elsewhere the
two agree exactly.
"""

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

from motiondiff.core.errors import UserError
from motiondiff.data.kinematics.quaternion import (
    cross,
    normalize,
    qbetween,
    qinv,
    qmul,
    qrot,
    quat_to_cont6d,
)
from motiondiff.data.kinematics.skeleton import SMPL22_PARENTS

FEATURES = 263
NUM_JOINTS = 22
FPS = 20
# Kinematic chains in the dataset's order; every chain's rotations start from the root's.
KINEMATIC_CHAINS = ((0, 2, 5, 8, 11), (0, 1, 4, 7, 10), (0, 3, 6, 9, 12, 15), (9, 14, 17, 19, 21), (9, 13, 16, 18, 20))
# Rest direction of the bone into each joint (facing +z, the body's left on +x); IK measures
# each joint's rotation from it. Index 0 (the root) has no bone.
RAW_OFFSETS = np.array(
    [
        [0, 0, 0],
        [1, 0, 0],
        [-1, 0, 0],
        [0, 1, 0],
        [0, -1, 0],
        [0, -1, 0],
        [0, 1, 0],
        [0, -1, 0],
        [0, -1, 0],
        [0, 1, 0],
        [0, 0, 1],
        [0, 0, 1],
        [0, 1, 0],
        [1, 0, 0],
        [-1, 0, 0],
        [0, 0, 1],
        [0, -1, 0],
        [0, -1, 0],
        [0, -1, 0],
        [0, -1, 0],
        [0, -1, 0],
        [0, -1, 0],
    ],
    dtype=np.float64,
)  # (22, 3)
RIGHT_HIP, LEFT_HIP, RIGHT_SHOULDER, LEFT_SHOULDER = 2, 1, 17, 16
# The foot joints in the order of the contact features: left ankle, left foot, right ankle, right foot.
FOOT_JOINTS = (7, 10, 8, 11)
# The leg the retargeting scales by: the bones into the right knee and the right ankle.
LEG_JOINTS = (5, 8)
# Standard deviation (frames) of the Gaussian that smooths the facing direction into the root rotation.
FACING_SMOOTHING = 20
# Bone lengths (metres) of the one skeleton the dataset retargets every motion to, bone into joints
# 1..21; measured on the sample motion 012314 (constant over its frames to 2e-6 m).
REFERENCE_BONE_LENGTHS = np.array(
    [
        0.103074,
        0.109883,
        0.131568,
        0.393623,
        0.390188,
        0.143190,
        0.432433,
        0.425643,
        0.057365,
        0.143382,
        0.149419,
        0.219360,
        0.137487,
        0.143383,
        0.103039,
        0.131614,
        0.122984,
        0.256840,
        0.263092,
        0.266012,
        0.269876,
    ]
)  # (21,)
# The dataset's target offsets: each bone's rest direction scaled to its reference length.
REFERENCE_OFFSETS = RAW_OFFSETS * np.concatenate([[0.0], REFERENCE_BONE_LENGTHS])[:, None]  # (22, 3)

_PARENTS = np.array(SMPL22_PARENTS)
assert all(_PARENTS[child] == parent for chain in KINEMATIC_CHAINS for parent, child in zip(chain, chain[1:]))
assert sorted(child for chain in KINEMATIC_CHAINS for child in chain[1:]) == list(range(1, NUM_JOINTS))


def feature_slices(num_joints: int = NUM_JOINTS) -> dict:
    """Where each part of a feature frame lives, in order; the widths add up to 12 * num_joints - 1."""
    widths = {
        "root_rot_velocity": 1,
        "root_linear_velocity": 2,
        "root_height": 1,
        "ric_positions": (num_joints - 1) * 3,
        "rotations": (num_joints - 1) * 6,
        "local_velocities": num_joints * 3,
        "foot_contact": 4,
    }
    slices, start = {}, 0
    for name, width in widths.items():
        slices[name] = slice(start, start + width)
        start += width
    return slices


assert feature_slices()["foot_contact"].stop == FEATURES


def _check_joints(joints) -> np.ndarray:
    """`joints` as float64 (T, 22, 3), or a UserError naming the problem."""
    joints = np.asarray(joints)
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3) or len(joints) < 2:
        raise UserError(
            f"HumanML3D features need joint positions of shape (frames >= 2, {NUM_JOINTS}, 3) in the SMPL "
            f"22-joint order, got {joints.shape}; convert the motion to the 22-joint skeleton first."
        )
    if not np.issubdtype(joints.dtype, np.number) or not np.isfinite(joints).all():
        raise UserError("HumanML3D features need finite joint positions, got nan or inf; fix the motion.")
    return joints.astype(np.float64)


def retarget(joints: np.ndarray, target_offsets) -> np.ndarray:
    """The motion on a skeleton with the bone lengths of `target_offsets` (22, 3), as the dataset does:
    every bone keeps its direction, and the root path scales by the ratio of the leg lengths."""
    joints = _check_joints(joints)
    target_lengths = np.linalg.norm(np.asarray(target_offsets, dtype=np.float64), axis=-1)  # (22,)
    assert target_lengths.shape == (NUM_JOINTS,), target_lengths.shape
    bones = joints[:, 1:] - joints[:, _PARENTS[1:]]  # (T, 21, 3)
    source_lengths = np.concatenate([[0.0], np.linalg.norm(bones[0], axis=-1)])  # (22,): frame 0, as the dataset
    if (source_lengths[1:] < 1e-8).any():
        raise UserError("Cannot retarget a motion whose first frame has a zero-length bone; fix the joints.")
    scale = target_lengths[list(LEG_JOINTS)].sum() / source_lengths[list(LEG_JOINTS)].sum()
    result = np.empty_like(joints)  # (T, 22, 3)
    result[:, 0] = joints[:, 0] * scale
    for joint in range(1, NUM_JOINTS):
        direction = normalize(joints[:, joint] - joints[:, _PARENTS[joint]])  # (T, 3)
        result[:, joint] = result[:, _PARENTS[joint]] + direction * target_lengths[joint]
    return result


def _across(joints: np.ndarray, hips_sign: float) -> np.ndarray:
    """Unit vectors (..., 3) across the body from hips and shoulders (toward its right for hips_sign=1)."""
    hips = hips_sign * (joints[..., RIGHT_HIP, :] - joints[..., LEFT_HIP, :])  # (..., 3)
    shoulders = joints[..., RIGHT_SHOULDER, :] - joints[..., LEFT_SHOULDER, :]  # (..., 3)
    return normalize(hips + shoulders)


def _turn_to_z(forward: np.ndarray) -> np.ndarray:
    """Quaternions (..., 4) turning the horizontal directions `forward` (..., 3) onto +z."""
    undefined = np.flatnonzero(~(np.linalg.norm(forward.reshape(-1, 3), axis=-1) > 1e-6))
    if len(undefined):
        raise UserError(
            f"The body's facing direction (from hips and shoulders) is undefined at frame(s) {undefined[:5].tolist()}: "
            "the hips and shoulders line up vertically or the body spins too fast; "
            "check the joint order and the up axis (y)."
        )
    return qbetween(forward, np.broadcast_to([0.0, 0.0, 1.0], forward.shape))


def canonicalize_joints(joints, target_offsets=None) -> np.ndarray:
    """The dataset's normalised placement (T, 22, 3): retargeted (when `target_offsets` is given), the
    lowest joint over the clip on y=0, the root's first XZ at the origin, the first frame facing +z."""
    joints = _check_joints(joints)
    if target_offsets is not None:
        joints = retarget(joints, target_offsets)
    joints = joints - np.array([0.0, joints[..., 1].min(), 0.0])  # floor: the lowest joint of the clip
    joints = joints - joints[0, 0] * np.array([1.0, 0.0, 1.0])  # root XZ of frame 0 at the origin
    forward = cross(np.array([0.0, 1.0, 0.0]), _across(joints[0], hips_sign=1.0))  # (3,)
    return qrot(_turn_to_z(forward / max(np.linalg.norm(forward), 1e-12)), joints)  # (T, 22, 3)


def root_rotations(joints: np.ndarray) -> np.ndarray:
    """Per-frame root quaternions (T, 4) of canonicalised joints: the yaw turning the smoothed facing onto +z."""
    forward = cross(np.array([0.0, 1.0, 0.0]), _across(joints, hips_sign=-1.0))  # (T, 3); dataset quirk
    forward = gaussian_filter1d(forward, FACING_SMOOTHING, axis=0, mode="nearest")  # (T, 3)
    forward = forward / np.maximum(np.linalg.norm(forward, axis=-1, keepdims=True), 1e-12)  # unit, or ~0 if undefined
    root_quat = _turn_to_z(forward)  # (T, 4)
    root_quat[0] = [1.0, 0.0, 0.0, 0.0]  # dataset quirk: the first frame is taken as facing +z exactly
    return root_quat


def local_rotations(joints: np.ndarray, root_quat: np.ndarray) -> np.ndarray:
    """Per-joint local quaternions (T, 22, 4) by inverse kinematics: each bone's shortest arc from its
    rest direction, relative to its chain's rotation so far (every chain starts from the root's)."""
    quats = np.zeros(joints.shape[:-1] + (4,))  # (T, 22, 4)
    quats[:, 0] = root_quat
    for chain in KINEMATIC_CHAINS:
        chain_rotation = root_quat  # (T, 4)
        for parent, child in zip(chain, chain[1:]):
            bone = joints[:, child] - joints[:, parent]  # (T, 3)
            global_rotation = qbetween(np.broadcast_to(RAW_OFFSETS[child], bone.shape), bone)  # (T, 4)
            quats[:, child] = qmul(qinv(chain_rotation), global_rotation)
            chain_rotation = global_rotation
    return quats


def foot_contacts(joints: np.ndarray, threshold: float) -> np.ndarray:
    """(T-1, 4) float: 1 where a foot joint moves less than sqrt(threshold) metres to the next frame."""
    feet = joints[:, list(FOOT_JOINTS)]  # (T, 4, 3)
    squared_step = ((feet[1:] - feet[:-1]) ** 2).sum(-1)  # (T-1, 4)
    return (squared_step < threshold).astype(np.float64)


def joints_to_features(joints, feet_threshold: float = 0.002, target_offsets=None) -> np.ndarray:
    """HumanML3D features (T-1, 263) float32 of joint positions (T, 22, 3), metres, y up, 20 fps.

    `target_offsets` (22, 3) retargets first, as the dataset does with `REFERENCE_OFFSETS`; None keeps
    the motion's own bone lengths.
    """
    joints = canonicalize_joints(joints, target_offsets)  # (T, 22, 3)
    frames = len(joints)
    root_quat = root_rotations(joints)  # (T, 4)
    rotations = quat_to_cont6d(local_rotations(joints, root_quat))  # (T, 22, 6)
    root_velocity = qrot(root_quat[1:], joints[1:, 0] - joints[:-1, 0])  # (T-1, 3): in the next frame's root frame
    yaw_step = qmul(root_quat[1:], qinv(root_quat[:-1]))  # (T-1, 4): turns about y only
    yaw_step = yaw_step * np.where(yaw_step[:, :1] < 0, -1.0, 1.0)  # w >= 0: the short way round
    yaw_velocity = np.arcsin(np.clip(yaw_step[:, 2], -1.0, 1.0))  # (T-1,): half-angles
    relative = joints - joints[:, :1] * np.array([1.0, 0.0, 1.0])  # (T, 22, 3): root XZ removed
    ric = qrot(root_quat[:, None], relative)  # (T, 22, 3)
    local_velocity = qrot(root_quat[:-1, None], joints[1:] - joints[:-1])  # (T-1, 22, 3)
    parts = [
        yaw_velocity[:, None],
        root_velocity[:, [0, 2]],
        ric[:-1, 0, 1:2],
        ric[:-1, 1:].reshape(frames - 1, -1),
        rotations[:-1, 1:].reshape(frames - 1, -1),
        local_velocity.reshape(frames - 1, -1),
        foot_contacts(joints, feet_threshold),
    ]
    features = np.concatenate(parts, axis=-1)  # (T-1, 263)
    assert features.shape == (frames - 1, FEATURES), features.shape
    return features.astype(np.float32)


def _recover_root(features: torch.Tensor) -> tuple:
    """Root quaternions (..., T, 4) and positions (..., T, 3) integrated from the root features."""
    half_angle = torch.cumsum(torch.cat([torch.zeros_like(features[..., :1, 0]), features[..., :-1, 0]], -1), -1)
    zero = torch.zeros_like(half_angle)  # (..., T)
    root_quat = torch.stack([torch.cos(half_angle), zero, torch.sin(half_angle), zero], -1)  # (..., T, 4)
    step = torch.stack([features[..., :-1, 1], zero[..., 1:], features[..., :-1, 2]], -1)  # (..., T-1, 3)
    step = torch.cat([torch.zeros_like(step[..., :1, :]), step], -2)  # (..., T, 3): nothing before frame 0
    world_step = qrot(qinv(root_quat), step)  # (..., T, 3)
    root_xz = torch.cumsum(world_step, -2)  # (..., T, 3)
    root_pos = torch.stack([root_xz[..., 0], features[..., 3], root_xz[..., 2]], -1)  # (..., T, 3)
    return root_quat, root_pos


def features_to_joints(features):
    """Joint positions (..., T, 22, 3) from HumanML3D features (..., T, 263); numpy in, numpy out, torch in,
    torch out (any device and dtype, batched, differentiable)."""
    if features.shape[-1:] != (FEATURES,) or features.ndim < 2:
        raise UserError(
            f"HumanML3D features must have shape (..., frames, {FEATURES}), got {tuple(features.shape)}; "
            "check the dataset's feature files (new_joint_vecs)."
        )
    if not isinstance(features, torch.Tensor):
        dtype = features.dtype if np.issubdtype(features.dtype, np.floating) else np.float64
        joints = features_to_joints(torch.from_numpy(np.asarray(features, dtype=np.float64)))
        return joints.numpy().astype(dtype)
    root_quat, root_pos = _recover_root(features)  # (..., T, 4), (..., T, 3)
    ric = features[..., feature_slices()["ric_positions"]].unflatten(-1, (NUM_JOINTS - 1, 3))  # (..., T, 21, 3)
    positions = qrot(qinv(root_quat)[..., None, :], ric)  # (..., T, 21, 3): back to world orientation
    positions = positions + (root_pos * root_pos.new_tensor([1.0, 0.0, 1.0]))[..., None, :]
    return torch.cat([root_pos[..., None, :], positions], -2)  # (..., T, 22, 3)

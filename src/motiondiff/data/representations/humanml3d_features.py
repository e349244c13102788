"""The HumanML3D-style motion features (263 for HumanML3D, 251 for KIT-ML), in both directions.

`joints_to_features` follows the datasets' own procedure (`process_file`) on joint positions
(T, J, 3), y up, in the skeleton's units (HumanML3D: 22 SMPL joints, metres, 20 fps; KIT-ML: 21 MMM
joints, millimetres, 12.5 fps; see `feature_skeletons`); `features_to_joints` is its inverse
(`recover_from_ric`). One feature frame t holds, in this order (`feature_slices`; J = 22 / 21):

    root_rot_velocity    (1)      change of the root rotation t -> t+1: half the angle, radians, about +y
                                  (the root rotation undoes the facing, so a left turn is negative)
    root_linear_velocity (2)      root XZ displacement t -> t+1, seen in frame t+1's root frame
    root_height          (1)      root y
    ric_positions        (3(J-1)) joints 1..J-1 relative to the root's XZ, seen in the root frame
    rotations            (6(J-1)) joints 1..J-1 local rotations, continuous 6D, from inverse kinematics
    local_velocities     (3J)     all joints' displacement t -> t+1, seen in frame t's root frame
    foot_contact         (4)      left ankle, left toe, right ankle, right toe: 1 when nearly still

The "root frame" turns the body's facing direction (from the hips and shoulders, smoothed over
time) onto +z. Quirks of the datasets kept for compatibility (their features are what the
statistics and every model were computed on):
- the smoothed facing uses across = (left_hip - right_hip) + (right_shoulder - left_shoulder),
  while the first-frame canonicalisation uses (right_hip - left_hip) + (right_shoulder - left_shoulder)
  (on the HumanML3D sample 012314 the other sign is off by up to 0.54 in the positions);
- the first frame's root rotation is the identity (the canonicalisation made it face +z, up to
  the smoothing), so `features_to_joints(joints_to_features(j))` is `canonicalize_joints(j)[:-1]`;
- the chains that start above the root (the arms, from spine3 or BLN) take their local rotations
  relative to the root rather than to their first joint;
- the facing is smoothed over 20 frames whatever the frame rate.
One deliberate difference: the datasets take the yaw velocity as arcsin of the y component of
the frame-to-frame root quaternion without making its w positive, which flips the sign of that
frame's turn whenever the smoothed facing crosses -z (a half-angle jump from +90 to -90 degrees);
here the quaternion is made w >= 0 first, so turning motions recover correctly. Elsewhere the
two agree exactly.

Every function takes the skeleton (default HumanML3D); the module's constants are HumanML3D's.
"""

from typing import Optional

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
from motiondiff.data.representations.feature_skeletons import KIT_SKELETON, SKELETONS, T2M_SKELETON, FeatureSkeleton

# HumanML3D's constants, for the code that works on its 22 joints only.
FEATURES = T2M_SKELETON.features  # 263
NUM_JOINTS = T2M_SKELETON.num_joints  # 22
FPS = T2M_SKELETON.fps  # 20
KINEMATIC_CHAINS = T2M_SKELETON.kinematic_chains
RAW_OFFSETS = T2M_SKELETON.raw_offsets  # (22, 3): rest directions (facing +z, the body's left on +x)
RIGHT_HIP, LEFT_HIP, RIGHT_SHOULDER, LEFT_SHOULDER = T2M_SKELETON.face_joints  # 2, 1, 17, 16
FOOT_JOINTS = T2M_SKELETON.foot_joints  # left ankle, left foot, right ankle, right foot
LEG_JOINTS = T2M_SKELETON.leg_joints  # the bones into the right knee and the right ankle
FACING_SMOOTHING = T2M_SKELETON.facing_smoothing
REFERENCE_BONE_LENGTHS = T2M_SKELETON.reference_bone_lengths  # (21,) metres, bones into joints 1..21
REFERENCE_OFFSETS = T2M_SKELETON.reference_offsets  # (22, 3)


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


def skeleton_of_width(width: int) -> FeatureSkeleton:
    """The skeleton whose features are `width` wide (263: HumanML3D, 251: KIT-ML), or a UserError."""
    for skeleton in SKELETONS:
        if skeleton.features == width:
            return skeleton
    known = ", ".join(f"{skeleton.features} ({skeleton.name})" for skeleton in SKELETONS)
    raise UserError(f"features of width {width} belong to no known skeleton (known widths: {known}).")


def _check_joints(joints, skeleton: FeatureSkeleton) -> np.ndarray:
    """`joints` as float64 (T, J, 3), or a UserError naming the problem."""
    joints, count = np.asarray(joints), skeleton.num_joints
    if joints.ndim != 3 or joints.shape[1:] != (count, 3) or len(joints) < 2:
        raise UserError(
            f"{skeleton.name} features need joint positions of shape (frames >= 2, {count}, 3) in the "
            f"{skeleton.joint_order} order, got {joints.shape}; convert the motion to the {count}-joint skeleton first."
        )
    if not np.issubdtype(joints.dtype, np.number) or not np.isfinite(joints).all():
        raise UserError(f"{skeleton.name} features need finite joint positions, got nan or inf; fix the motion.")
    return joints.astype(np.float64)


def retarget(joints: np.ndarray, target_offsets, skeleton: FeatureSkeleton = T2M_SKELETON) -> np.ndarray:
    """The motion on a skeleton with the bone lengths of `target_offsets` (J, 3), as the dataset does:
    every bone keeps its direction, and the root path scales by the ratio of the leg lengths."""
    joints = _check_joints(joints, skeleton)
    parents = np.array(skeleton.parents)  # (J,)
    target_lengths = np.linalg.norm(np.asarray(target_offsets, dtype=np.float64), axis=-1)  # (J,)
    assert target_lengths.shape == (skeleton.num_joints,), target_lengths.shape
    bones = joints[:, 1:] - joints[:, parents[1:]]  # (T, J-1, 3)
    source_lengths = np.concatenate([[0.0], np.linalg.norm(bones[0], axis=-1)])  # (J,): frame 0, as the dataset
    if (source_lengths[1:] < 1e-8).any():
        raise UserError("Cannot retarget a motion whose first frame has a zero-length bone; fix the joints.")
    legs = list(skeleton.leg_joints)
    scale = target_lengths[legs].sum() / source_lengths[legs].sum()
    result = np.empty_like(joints)  # (T, J, 3)
    result[:, 0] = joints[:, 0] * scale
    for joint in range(1, skeleton.num_joints):
        direction = normalize(joints[:, joint] - joints[:, parents[joint]])  # (T, 3)
        result[:, joint] = result[:, parents[joint]] + direction * target_lengths[joint]
    return result


def _across(joints: np.ndarray, hips_sign: float, skeleton: FeatureSkeleton) -> np.ndarray:
    """Unit vectors (..., 3) across the body from hips and shoulders (toward its right for hips_sign=1)."""
    right_hip, left_hip, right_shoulder, left_shoulder = skeleton.face_joints
    hips = hips_sign * (joints[..., right_hip, :] - joints[..., left_hip, :])  # (..., 3)
    shoulders = joints[..., right_shoulder, :] - joints[..., left_shoulder, :]  # (..., 3)
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


def canonicalize_joints(joints, target_offsets=None, skeleton: FeatureSkeleton = T2M_SKELETON) -> np.ndarray:
    """The dataset's normalised placement (T, J, 3): retargeted (when `target_offsets` is given), the
    lowest joint over the clip on y=0, the root's first XZ at the origin, the first frame facing +z."""
    joints = _check_joints(joints, skeleton)
    if target_offsets is not None:
        joints = retarget(joints, target_offsets, skeleton)
    joints = joints - np.array([0.0, joints[..., 1].min(), 0.0])  # floor: the lowest joint of the clip
    joints = joints - joints[0, 0] * np.array([1.0, 0.0, 1.0])  # root XZ of frame 0 at the origin
    forward = cross(np.array([0.0, 1.0, 0.0]), _across(joints[0], 1.0, skeleton))  # (3,)
    return qrot(_turn_to_z(forward / max(np.linalg.norm(forward), 1e-12)), joints)  # (T, J, 3)


def root_rotations(joints: np.ndarray, skeleton: FeatureSkeleton = T2M_SKELETON) -> np.ndarray:
    """Per-frame root quaternions (T, 4) of canonicalised joints: the yaw turning the smoothed facing onto +z."""
    forward = cross(np.array([0.0, 1.0, 0.0]), _across(joints, -1.0, skeleton))  # (T, 3); dataset quirk
    forward = gaussian_filter1d(forward, skeleton.facing_smoothing, axis=0, mode="nearest")  # (T, 3)
    forward = forward / np.maximum(np.linalg.norm(forward, axis=-1, keepdims=True), 1e-12)  # unit, or ~0 if undefined
    root_quat = _turn_to_z(forward)  # (T, 4)
    root_quat[0] = [1.0, 0.0, 0.0, 0.0]  # dataset quirk: the first frame is taken as facing +z exactly
    return root_quat


def local_rotations(joints: np.ndarray, root_quat: np.ndarray, skeleton: FeatureSkeleton = T2M_SKELETON) -> np.ndarray:
    """Per-joint local quaternions (T, J, 4) by inverse kinematics: each bone's shortest arc from its
    rest direction, relative to its chain's rotation so far (every chain starts from the root's)."""
    quats = np.zeros(joints.shape[:-1] + (4,))  # (T, J, 4)
    quats[:, 0] = root_quat
    for chain in skeleton.kinematic_chains:
        chain_rotation = root_quat  # (T, 4)
        for parent, child in zip(chain, chain[1:]):
            bone = joints[:, child] - joints[:, parent]  # (T, 3)
            global_rotation = qbetween(np.broadcast_to(skeleton.raw_offsets[child], bone.shape), bone)  # (T, 4)
            quats[:, child] = qmul(qinv(chain_rotation), global_rotation)
            chain_rotation = global_rotation
    return quats


def foot_contacts(joints: np.ndarray, threshold: float, skeleton: FeatureSkeleton = T2M_SKELETON) -> np.ndarray:
    """(T-1, 4) float: 1 where a foot joint's squared step to the next frame is below `threshold` (units^2)."""
    feet = joints[:, list(skeleton.foot_joints)]  # (T, 4, 3)
    squared_step = ((feet[1:] - feet[:-1]) ** 2).sum(-1)  # (T-1, 4)
    return (squared_step < threshold).astype(np.float64)


def joints_to_features(
    joints,
    feet_threshold: Optional[float] = None,
    target_offsets=None,
    skeleton: FeatureSkeleton = T2M_SKELETON,
) -> np.ndarray:
    """Features (T-1, 12J-1) float32 of joint positions (T, J, 3), y up, in the skeleton's units and order.

    HumanML3D: (T, 22, 3) metres at 20 fps -> (T-1, 263); KIT-ML: (T, 21, 3) millimetres at 12.5 fps ->
    (T-1, 251). `feet_threshold` (squared units per frame) defaults to the dataset's (0.002 m^2, 0.05 mm^2).
    `target_offsets` (J, 3) retargets first, as the dataset does with `skeleton.reference_offsets`; None
    keeps the motion's own bone lengths.
    """
    threshold = skeleton.feet_threshold if feet_threshold is None else feet_threshold
    joints = canonicalize_joints(joints, target_offsets, skeleton)  # (T, J, 3)
    frames = len(joints)
    root_quat = root_rotations(joints, skeleton)  # (T, 4)
    rotations = quat_to_cont6d(local_rotations(joints, root_quat, skeleton))  # (T, J, 6)
    root_velocity = qrot(root_quat[1:], joints[1:, 0] - joints[:-1, 0])  # (T-1, 3): in the next frame's root frame
    yaw_step = qmul(root_quat[1:], qinv(root_quat[:-1]))  # (T-1, 4): turns about y only
    yaw_step = yaw_step * np.where(yaw_step[:, :1] < 0, -1.0, 1.0)  # w >= 0: the short way round
    yaw_velocity = np.arcsin(np.clip(yaw_step[:, 2], -1.0, 1.0))  # (T-1,): half-angles
    relative = joints - joints[:, :1] * np.array([1.0, 0.0, 1.0])  # (T, J, 3): root XZ removed
    ric = qrot(root_quat[:, None], relative)  # (T, J, 3)
    local_velocity = qrot(root_quat[:-1, None], joints[1:] - joints[:-1])  # (T-1, J, 3)
    parts = [
        yaw_velocity[:, None],
        root_velocity[:, [0, 2]],
        ric[:-1, 0, 1:2],
        ric[:-1, 1:].reshape(frames - 1, -1),
        rotations[:-1, 1:].reshape(frames - 1, -1),
        local_velocity.reshape(frames - 1, -1),
        foot_contacts(joints, threshold, skeleton),
    ]
    features = np.concatenate(parts, axis=-1)  # (T-1, 12J-1)
    assert features.shape == (frames - 1, skeleton.features), features.shape
    return features.astype(np.float32)


def _recover_root(features: torch.Tensor) -> tuple:
    """Root quaternions (..., T, 4) and positions (..., T, 3) integrated from the root features."""
    half_angle = torch.cumsum(torch.cat([torch.zeros_like(features[..., :1, 0]), features[..., :-1, 0]], -1), -1)
    zero = torch.zeros_like(half_angle)  # (..., T)
    root_quat = torch.stack([torch.cos(half_angle), zero, torch.sin(half_angle), zero], -1)  # (..., T, 4)
    step = torch.stack([features[..., :-1, 1], zero[..., 1:], features[..., :-1, 2]], -1)  # (..., T-1, 3)
    step = torch.cat([step.new_zeros(*step.shape[:-2], 1, 3), step], -2)  # (..., T, 3): nothing before frame 0
    world_step = qrot(qinv(root_quat), step)  # (..., T, 3)
    root_xz = torch.cumsum(world_step, -2)  # (..., T, 3)
    root_pos = torch.stack([root_xz[..., 0], features[..., 3], root_xz[..., 2]], -1)  # (..., T, 3)
    return root_quat, root_pos


def features_to_joints(features, skeleton: Optional[FeatureSkeleton] = T2M_SKELETON):
    """Joint positions (..., T, J, 3) from features (..., T, 12J-1), in the skeleton's units; numpy in, numpy
    out, torch in, torch out (any device and dtype, batched, differentiable). The default skeleton, HumanML3D,
    refuses other widths; `skeleton=None` picks it by the width (263: HumanML3D, 251: KIT-ML)."""
    if skeleton is None:
        skeleton = skeleton_of_width(features.shape[-1] if features.ndim else 0)
    if features.shape[-1:] != (skeleton.features,) or features.ndim < 2:
        raise UserError(
            f"{skeleton.name} features must have shape (..., frames, {skeleton.features}), "
            f"got {tuple(features.shape)}; check the dataset's feature files (new_joint_vecs)."
        )
    if not isinstance(features, torch.Tensor):
        dtype = features.dtype if np.issubdtype(features.dtype, np.floating) else np.float64
        joints = features_to_joints(torch.from_numpy(np.asarray(features, dtype=np.float64)), skeleton)
        return joints.numpy().astype(dtype)
    root_quat, root_pos = _recover_root(features)  # (..., T, 4), (..., T, 3)
    count = skeleton.num_joints
    ric = features[..., feature_slices(count)["ric_positions"]].unflatten(-1, (count - 1, 3))  # (..., T, J-1, 3)
    positions = qrot(qinv(root_quat)[..., None, :], ric)  # (..., T, J-1, 3): back to world orientation
    positions = positions + (root_pos * root_pos.new_tensor([1.0, 0.0, 1.0]))[..., None, :]
    return torch.cat([root_pos[..., None, :], positions], -2)  # (..., T, J, 3)


def kit_features_to_joints(features):
    """KIT-ML joint positions (..., T, 21, 3), millimetres, from its features (..., T, 251)."""
    return features_to_joints(features, KIT_SKELETON)

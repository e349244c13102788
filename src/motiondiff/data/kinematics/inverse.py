"""Inverse kinematics: joint positions -> local joint rotations on a skeleton with fixed rest offsets.

What an exporter (BVH, SMPL) needs from a motion given only as joint positions (frames, joints, 3):
a rest skeleton (`rest_offsets`) and per-frame local rotations (`solve_rotations`) such that forward
kinematics with those offsets gives the positions back wherever the motion's bones keep their
lengths. Each joint's global rotation is found from its children:

- two or more children (pelvis, chest): the rotation that best turns the rest offsets of the children
  onto their current offsets (Kabsch / Wahba by SVD); exact when the group keeps its shape;
- one child: the swing that turns the bone onto its current direction exactly, and a twist about the
  bone from the limb plane (this bone and the child's bone) when the limb is bent, blending into the
  twist-free swing from the parent as the limb straightens, where the plane says nothing; so the
  rotation never flips when a knee or elbow passes through straight, whatever way the body faces;
- no child (hands, feet tips, head): the parent's rotation (local identity).

Arrays are numpy float64: positions (T, J, 3), rotations (T, J, 3, 3) acting on column vectors.
Parents come before children; -1 marks the root.
"""

from typing import Optional

import numpy as np

from motiondiff.data.kinematics.skeleton import forward_kinematics

BENT_FROM, BENT_FULLY = np.radians(10.0), np.radians(30.0)  # the limb plane's weight rises from 0 to 1 between these
EPS = 1e-9
MAX_TWIST_STEP = np.radians(20.0)  # the most a limb's twist turns from one frame to the next
HINGE_CONSISTENCY = 0.8  # a limb is a hinge when its bent frames' plane normals average to at least this length


def children_of(parents) -> list:
    """Each joint's children, in joint order."""
    children = [[] for _ in parents]
    for joint, parent in enumerate(parents):
        if parent >= 0:
            children[parent].append(joint)
    return children


def unit(v: np.ndarray) -> np.ndarray:
    """v / |v| over the last axis; zero vectors stay zero."""
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(norm, EPS)


def kabsch(rest: np.ndarray, current: np.ndarray, weights: Optional[np.ndarray] = None) -> np.ndarray:
    """Rotations (T, 3, 3) that best turn the vectors `rest` (K, 3) onto `current` (T, K, 3) (no reflection)."""
    weights = np.ones(len(rest)) if weights is None else weights
    covariance = np.einsum("k,tka,kb->tab", weights, current, rest)  # (T, 3, 3)
    u, _, vt = np.linalg.svd(covariance)
    sign = np.sign(np.linalg.det(u @ vt))  # (T,)
    u[..., :, 2] *= sign[:, None]
    return u @ vt  # (T, 3, 3)


def shortest_arc(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotations (..., 3, 3) turning unit vectors u onto unit vectors v about u x v (Rodrigues)."""
    axis = np.cross(u, v)  # (..., 3)
    cos = np.sum(u * v, axis=-1)[..., None, None]  # (..., 1, 1)
    skew = np.zeros(axis.shape + (3,))
    skew[..., 0, 1], skew[..., 0, 2], skew[..., 1, 2] = -axis[..., 2], axis[..., 1], -axis[..., 0]
    skew = skew - np.swapaxes(skew, -1, -2)
    # I + K + K^2 / (1 + cos); near a half turn (cos -> -1), turn about any axis perpendicular to u
    near_half = cos[..., 0, 0] < -1 + 1e-8
    rotation = np.eye(3) + skew + skew @ skew / np.maximum(1 + cos, 1e-8)
    if near_half.any():
        helper = np.where(np.abs(u[near_half, :1]) < 0.9, [1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
        axis = unit(np.cross(u[near_half], helper))
        rotation[near_half] = 2 * np.einsum("na,nb->nab", axis, axis) - np.eye(3)
    return rotation


def frame(direction: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Orthonormal frames (..., 3, 3) with columns: direction, reference made perpendicular to it, their cross."""
    first = unit(direction)
    second = unit(reference - np.sum(reference * first, axis=-1, keepdims=True) * first)
    return np.stack([first, second, np.cross(first, second)], axis=-1)


def bend_weight(angle: np.ndarray) -> np.ndarray:
    """How much the limb plane decides the twist: 0 for a limb straighter than 10 degrees, 1 past 30 (smooth)."""
    x = np.clip((angle - BENT_FROM) / (BENT_FULLY - BENT_FROM), 0.0, 1.0)
    return x * x * (3 - 2 * x)


def rest_offsets(positions: np.ndarray, parents, directions: Optional[np.ndarray] = None) -> np.ndarray:
    """A rest skeleton (J, 3) for the motion `positions` (T, J, 3): every bone at its median length.

    Groups of siblings (the pelvis's hips and spine, the chest's neck and collars) keep the shape they
    have in the motion (averaged over frames), turned to best match `directions` (J, 3), the rest pose's
    bone directions (a T-pose); lone bones point along `directions`. Without `directions`, the first
    frame is the rest pose. The root's offset is its position in the first frame.
    """
    positions = np.asarray(positions, dtype=np.float64)
    offsets = np.zeros((len(parents), 3))
    offsets[0] = positions[0, 0]
    first = positions[0] - positions[0, list(np.maximum(parents, 0))]  # (J, 3) bone vectors of frame 0
    directions = unit(first if directions is None else np.asarray(directions, dtype=np.float64))
    for joint, children in enumerate(children_of(parents)):
        if not children:
            continue
        vectors = positions[:, children] - positions[:, joint : joint + 1]  # (T, K, 3)
        lengths = np.median(np.linalg.norm(vectors, axis=-1), axis=0)  # (K,)
        if len(children) == 1:
            offsets[children[0]] = directions[children[0]] * lengths[0]
            continue
        shape = vectors[0]  # (K, 3): a Procrustes mean of the group's shape over the frames
        for _ in range(3):
            aligned = np.einsum("tba,tkb->tka", kabsch(shape, vectors), vectors)  # each frame turned onto `shape`
            shape = aligned.mean(axis=0)
        shape = unit(shape) * lengths[:, None]
        turn = kabsch(shape, (directions[children] * lengths[:, None])[None])[0]  # (3, 3) onto the rest directions
        offsets[children] = shape @ turn.T
    return offsets


def global_rotations(positions: np.ndarray, parents, offsets: np.ndarray) -> np.ndarray:
    """Global rotations (T, J, 3, 3) that turn the rest skeleton `offsets` (J, 3) onto `positions` (T, J, 3)."""
    positions = np.asarray(positions, dtype=np.float64)
    frames, joints = positions.shape[:2]
    assert offsets.shape == (joints, 3) and len(parents) == joints, (offsets.shape, len(parents), joints)
    children = children_of(parents)
    rotations = np.empty((frames, joints, 3, 3))
    for joint, parent in enumerate(parents):
        above = np.broadcast_to(np.eye(3), (frames, 3, 3)) if parent < 0 else rotations[:, parent]
        kids = children[joint]
        if not kids:
            rotations[:, joint] = above
        elif len(kids) > 1:
            vectors = positions[:, kids] - positions[:, joint : joint + 1]  # (T, K, 3)
            rotations[:, joint] = kabsch(offsets[kids], vectors, np.linalg.norm(offsets[kids], axis=-1))
        else:
            grandchildren = children[kids[0]]
            after = positions[:, grandchildren[0]] if len(grandchildren) == 1 else None
            rotations[:, joint] = limb_rotation(
                positions[:, joint], positions[:, kids[0]], after, offsets[kids[0]], above
            )
    return rotations


def limb_rotation(start, end, after, rest, above) -> np.ndarray:
    """Global rotations (T, 3, 3) of a joint at `start` (T, 3) whose one child is at `end` (T, 3).

    The swing turns the rest bone `rest` (3,) onto the bone exactly. When the child has one child of
    its own, at `after` (T, 3), the twist comes from the limb plane: its normal, seen in the twist-free
    frame and averaged over the frames bent past 30 degrees, is the hinge axis at rest; each frame turns
    that axis onto the plane's normal, with a weight that falls to 0 as the limb straightens; then the
    axis stays where the last frame had it in the parent's frame (`above`, (T, 3, 3)), so the twist
    neither jumps nor drifts while the limb is straight.
    """
    bone, rest = unit(end - start), unit(rest)  # (T, 3), (3,)
    local_bone = np.einsum("tba,tb->ta", above, bone)  # the bone in the parent's frame
    swing = above @ shortest_arc(np.broadcast_to(rest, local_bone.shape), local_bone)  # (T, 3, 3) twist-free
    if after is None:
        return swing
    next_bone = unit(after - end)
    normal = np.cross(bone, next_bone)  # (T, 3): the limb plane's normal, |.| = sin(bend)
    bend = np.arctan2(np.linalg.norm(normal, axis=-1), np.sum(bone * next_bone, axis=-1))  # (T,)
    bent = bend > BENT_FULLY
    if not bent.any():
        return swing
    hinge = np.einsum("tba,tb->ta", swing[bent], unit(normal[bent])).mean(axis=0)  # in the rest frame
    hinge = hinge - np.dot(hinge, rest) * rest
    if np.linalg.norm(hinge) < HINGE_CONSISTENCY:  # bends about no one axis (a spine): the parent decides
        return swing
    hinge = unit(hinge)
    weight = bend_weight(bend)  # (T,)
    normal = unit(normal)
    reference = np.empty_like(bone)  # (T, 3): the hinge axis now, in world space
    carried = swing[0] @ hinge  # before the first frame: where the twist-free swing puts the hinge
    for t in range(len(bone)):
        if t > 0:  # the last frame's axis, kept fixed in the parent's frame
            carried = above[t] @ (above[t - 1].T @ reference[t - 1])
        blended = weight[t] * normal[t] + (1 - weight[t]) * carried
        blended = blended - np.dot(blended, bone[t]) * bone[t]
        reference[t] = blended if np.linalg.norm(blended) > 1e-6 else swing[t] @ hinge
        if t > 0:
            reference[t] = limit_twist(carried, reference[t], bone[t])
    return frame(bone, reference) @ frame(rest, hinge).T


def limit_twist(previous: np.ndarray, wanted: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """`wanted` (3,) turned back about the unit `axis` to within MAX_TWIST_STEP of `previous` (3,), both made
    perpendicular to the axis: a limb that straightens and bends the other way (a hyperextended elbow) would
    otherwise ask for a half-turn twist in one frame; the twist catches up over a few frames instead, and the
    positions stay exact (the child's rotation takes up the difference)."""
    start = unit(previous - np.dot(previous, axis) * axis)
    end = unit(wanted - np.dot(wanted, axis) * axis)
    angle = np.arctan2(np.dot(np.cross(start, end), axis), np.dot(start, end))
    if abs(angle) <= MAX_TWIST_STEP:
        return end
    step = np.sign(angle) * MAX_TWIST_STEP
    return start * np.cos(step) + np.cross(axis, start) * np.sin(step)


def solve_rotations(positions: np.ndarray, parents, offsets: np.ndarray) -> np.ndarray:
    """Local rotations (T, J, 3, 3) on the rest skeleton `offsets` (J, 3) that reproduce `positions` (T, J, 3)."""
    world = global_rotations(positions, parents, offsets)  # (T, J, 3, 3)
    local = world.copy()
    for joint, parent in enumerate(parents):
        if parent >= 0:
            local[:, joint] = np.swapaxes(world[:, parent], -1, -2) @ world[:, joint]
    return local


def reconstruct(local_rotations: np.ndarray, parents, offsets: np.ndarray, root_positions: np.ndarray) -> np.ndarray:
    """Positions (T, J, 3) by forward kinematics from local rotations, rest offsets and the root's path (T, 3)."""
    translations = np.broadcast_to(offsets, local_rotations.shape[:2] + (3,)).copy()
    translations[:, 0] = root_positions
    return forward_kinematics(parents, local_rotations, translations)

"""A 22-joint SMPL motion (joint positions) -> a BVH file on the user's own skeleton (Mixamo, CMU naming).

The target skeleton is read from the user's BVH file as declared: names with namespaces, OFFSETs (its
rest pose, every rotation the identity), each joint's channels and End Sites, all written back as they
were. The SMPL22 joints are placed on the target's joints through a joint map (`SMPL22_JOINT_MAPS`).
Each mapped target joint with a mapped child gets the source's global rotation (from inverse
kinematics, twist included) composed with a fixed rest-to-rest alignment: the rotation that turns the
target's rest bone (or group of bones) onto the source's, with the body's axes (left, up, forward) of
both rest poses fixing the twist about a lone bone. So each mapped bone points where the source's bone
points. An unmapped joint that lies on a mapped bone (CMU's LHipJoint, LowerBack, Neck and shoulders, at
zero offsets) swings so that the bone points where the source's does; the other unmapped joints (fingers,
eyes, end joints) keep their rest local rotation. The root follows the source pelvis, scaled by the ratio
of the legs (which also converts to the file's units); everything is written in the file's own channels.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from motiondiff.core.errors import UserError
from motiondiff.data.formats.bvh import load_bvh_hierarchy
from motiondiff.data.formats.bvh_to_humanml3d import SMPL22_JOINT_MAPS, choose_joint_map, map_joints
from motiondiff.data.formats.bvh_write import write_bvh
from motiondiff.data.kinematics.inverse import (
    children_of,
    frame,
    global_rotations,
    kabsch,
    rest_offsets,
    shortest_arc,
    unit,
)
from motiondiff.data.kinematics.skeleton import SMPL22_NAMES, SMPL22_PARENTS, forward_kinematics, subset_parents
from motiondiff.export.bvh import SMPL22_TPOSE, checked_positions

HUMANML3D_FPS = 20.0  # the frame rate of a motion whose fps is not given
S = {name: i for i, name in enumerate(SMPL22_NAMES)}
LEG_BONES = (
    ("left_hip", "left_knee"),
    ("left_knee", "left_ankle"),
    ("right_hip", "right_knee"),
    ("right_knee", "right_ankle"),
)


@dataclass(frozen=True)
class RetargetExport:
    """What `retarget_to_bvh` wrote, and how well the target's bones follow the source's."""

    path: Path
    frames: int
    fps: float
    joints: int  # of the target skeleton
    joint_map: str  # the SMPL22 joint map used ('mixamo', 'cmu')
    units_per_metre: float  # the root path's scale: target leg length (file units) / source leg length (m)
    median_angle_deg: float  # between mapped target bones and the source's, over bones and frames
    max_angle_deg: float

    def describe(self) -> str:
        """One line for a command to print."""
        return (
            f"{self.path}: {self.frames} frames at {self.fps:g} fps on {self.joints} joints (joint map "
            f"'{self.joint_map}'); mapped bones within {self.median_angle_deg:.1f} deg of the source's "
            f"(median, at most {self.max_angle_deg:.1f} deg)"
        )


def rest_positions(parents, offsets: np.ndarray) -> np.ndarray:
    """Global rest positions (J, 3) of a skeleton whose rotations are all the identity."""
    joints = len(parents)
    return forward_kinematics(parents, np.tile(np.eye(3), (1, joints, 1, 1)), offsets[None].copy())[0]


def body_axes(rest: np.ndarray, names) -> np.ndarray:
    """Unit (left, up, forward) axes (3, 3) of a rest pose from its joints (J, 3) named by SMPL22 `names`."""
    at = {name: rest[i] for i, name in enumerate(names)}
    left = unit(at["left_hip"] - at["right_hip"])
    up = at["neck"] - at["pelvis"]
    up = unit(up - np.dot(up, left) * left)
    return np.stack([left, up, np.cross(left, up)])


def alignments(source: np.ndarray, target: np.ndarray, parents, names) -> list:
    """Per joint of a tree, the rotation (3, 3) turning the target's rest bones from it onto the source's (None
    for leaves), from both rest poses (J, 3); `names` are the joints' SMPL22 names."""
    source_axes, target_axes = body_axes(source, names), body_axes(target, names)
    result = []
    for joint, kids in enumerate(children_of(parents)):
        if not kids:
            result.append(None)
            continue
        source_bones = unit(source[kids] - source[joint])  # (K, 3)
        target_bones = unit(target[kids] - target[joint])
        if len(kids) > 1:
            result.append(kabsch(target_bones, source_bones[None])[0])
            continue
        # the body axis most perpendicular to the bone in both rest poses fixes the twist about it
        score = np.minimum(
            np.linalg.norm(np.cross(source_bones[0], source_axes), axis=-1),
            np.linalg.norm(np.cross(target_bones[0], target_axes), axis=-1),
        )  # (3,)
        axis = int(np.argmax(score))
        result.append(frame(source_bones[0], source_axes[axis]) @ frame(target_bones[0], target_axes[axis]).T)
    return result


def leg_length(joints22: np.ndarray) -> float:
    """Hip to ankle, the mean of both legs, of SMPL22 joints (..., 22, 3); the median over any frames."""
    lengths = sum(np.linalg.norm(joints22[..., S[b], :] - joints22[..., S[a], :], axis=-1) for a, b in LEG_BONES)
    return float(np.median(lengths)) / 2


def bone_angles(source22: np.ndarray, target22: np.ndarray) -> np.ndarray:
    """Angles (T, 21) in degrees between the SMPL22 bones of two motions (T, 22, 3)."""
    parents = list(SMPL22_PARENTS[1:])
    a = unit(source22[:, 1:] - source22[:, parents])
    b = unit(target22[:, 1:] - target22[:, parents])
    return np.degrees(np.arccos(np.clip(np.sum(a * b, axis=-1), -1.0, 1.0)))


def desired_rotations(positions: np.ndarray, target, target22: np.ndarray, mapping: dict) -> dict:
    """{target joint: global rotations (T, 3, 3)} for the mapped target joints with mapped children: the source's
    (positions (T, 22, 3)) composed with the rest-to-rest alignment; target22 (22, 3) is the target's rest."""
    # the source on the tree of the SMPL22 joints that are target joints (CMU lacks spine2 and the collars)
    kept = [j for j, name in enumerate(SMPL22_NAMES) if isinstance(mapping[name], str)]
    kept_names, parents = [SMPL22_NAMES[j] for j in kept], subset_parents(SMPL22_PARENTS, kept)
    source = positions[:, kept]  # (T, K, 3)
    source_rest = rest_positions(parents, rest_offsets(source, parents, SMPL22_TPOSE[kept]))  # (K, 3)
    world = global_rotations(source, parents, source_rest - source_rest[list(np.maximum(parents, 0))])
    turns = alignments(source_rest, target22[kept], parents, kept_names)
    return {
        target.index(mapping[name]): world[:, k] @ turn
        for k, (name, turn) in enumerate(zip(kept_names, turns))
        if turn is not None
    }


def carriers(target, mapping: dict) -> dict:
    """{unmapped target joint u: [(d, p, source d, source p)]}: u is the first joint on the way from the mapped
    joint p to the mapped joint d, where their SMPL22 joints are parent and child (CMU's LHipJoint, LowerBack,
    Neck and shoulders, at zero offsets): u can swing so that the bone p -> d points where the source's does."""
    mapped = {
        target.index(spec): j for j, spec in enumerate(mapping[name] for name in SMPL22_NAMES) if isinstance(spec, str)
    }
    found = {}
    for d, source_d in mapped.items():
        source_p = SMPL22_PARENTS[source_d]
        while source_p >= 0 and not isinstance(mapping[SMPL22_NAMES[source_p]], str):
            source_p = SMPL22_PARENTS[source_p]
        if source_p < 0:
            continue
        p, u = target.index(mapping[SMPL22_NAMES[source_p]]), d
        while target.parents[u] not in (p, -1):
            u = target.parents[u]
        if target.parents[u] == p and u != d and u not in mapped:
            found.setdefault(u, []).append((d, p, source_d, source_p))
    return found


def pose_target(hierarchy, desired: dict, steered: dict, positions: np.ndarray, root_path: np.ndarray) -> np.ndarray:
    """Local rotations (T, J', 3, 3) of the target: the desired globals where a joint rotates, the carriers
    swung onto the source's bones, the identity elsewhere; root_path (T, 3) places the root."""
    target = hierarchy.skeleton
    rest = rest_positions(target.parents, target.offsets)  # (J', 3)
    frames, joints = len(root_path), target.num_joints
    local = np.tile(np.eye(3), (frames, joints, 1, 1))  # (T, J', 3, 3)
    world, where = np.empty_like(local), np.empty((frames, joints, 3))
    for joint, parent in enumerate(target.parents):
        above = world[:, parent] if parent >= 0 else np.broadcast_to(np.eye(3), (frames, 3, 3))
        where[:, joint] = root_path if parent < 0 else where[:, parent] + above @ target.offsets[joint]
        rotating = len(hierarchy.rotation_order(joint)) == 3
        if rotating and joint in desired:
            local[:, joint] = np.swapaxes(above, -1, -2) @ desired[joint]
        elif rotating and joint in steered:
            ends = steered[joint]
            at_rest = np.stack([rest[d] - rest[joint] for d, _, _, _ in ends])  # (K, 3) from the joint, at rest
            wanted = (
                np.stack(
                    [
                        where[:, p] + np.linalg.norm(rest[d] - rest[p]) * unit(positions[:, sd] - positions[:, sp])
                        for d, p, sd, sp in ends
                    ],
                    axis=1,
                )
                - where[:, joint : joint + 1]
            )  # (T, K, 3) from the joint to where the ends belong
            if np.linalg.norm(at_rest, axis=-1).min() > 1e-9:
                if len(ends) == 1:
                    now = unit(np.einsum("tab,b->ta", above, at_rest[0]))
                    turn = shortest_arc(now, unit(wanted[:, 0])) @ above  # the least swing
                else:
                    turn = kabsch(at_rest, wanted)
                local[:, joint] = np.swapaxes(above, -1, -2) @ turn
        world[:, joint] = above @ local[:, joint]
    return local


def retarget_to_bvh(
    path,
    positions: np.ndarray,  # (T, 22, 3) SMPL22 joints, metres, y up
    skeleton_bvh,
    joint_map: str = "auto",
    fps=None,  # of the motion; None: HumanML3D's 20
) -> RetargetExport:
    """Write the motion as a new BVH file on the skeleton of the user's file `skeleton_bvh`."""
    positions = checked_positions(positions, SMPL22_NAMES, SMPL22_PARENTS)
    fps = HUMANML3D_FPS if fps is None else fps
    if Path(path).exists():
        raise UserError(f"'{path}' already exists: BVH export never overwrites a file; give a new path.")
    hierarchy = load_bvh_hierarchy(skeleton_bvh)
    target = hierarchy.skeleton
    key = choose_joint_map(target.names, joint_map, f"BVH file '{skeleton_bvh}'")
    mapping = SMPL22_JOINT_MAPS[key]
    target_rest = rest_positions(target.parents, target.offsets)  # (J', 3) file units
    target22 = map_joints(target_rest[None], target.names, mapping)[0]  # (22, 3)
    scale = leg_length(target22) / leg_length(positions)  # file units per source metre
    pelvis = target.index(mapping["pelvis"])
    # the pelvis's ancestors (if any) keep identity rotations, so the root sits at a fixed offset from it
    root_path = positions[:, S["pelvis"]] * scale - (target_rest[pelvis] - target_rest[0])  # (T, 3)
    desired = desired_rotations(positions, target, target22, mapping)
    local = pose_target(hierarchy, desired, carriers(target, mapping), positions, root_path)  # (T, J', 3, 3)
    written = write_bvh(
        path,
        target,
        local,
        root_path,
        fps,
        names=hierarchy.declared_names,
        channels=hierarchy.channels,
        end_sites=hierarchy.end_sites,
    )
    translations = np.broadcast_to(target.offsets, local.shape[:2] + (3,)).copy()
    translations[:, 0] = root_path
    moved22 = map_joints(forward_kinematics(target.parents, local, translations), target.names, mapping)
    angles = bone_angles(positions, moved22)  # (T, 21)
    return RetargetExport(
        written,
        len(positions),
        float(fps),
        target.num_joints,
        key,
        float(scale),
        float(np.median(angles)),
        float(angles.max()),
    )

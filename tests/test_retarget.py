"""Retargeting a 22-joint SMPL motion onto a user's BVH skeleton: the real Mixamo (Gangnam-Style, 67 joints,
namespaced, centimetres) and CMU-named (proud, 31 joints) skeletons in ../shared; bone directions, rest
rotations of the unmapped joints, the file's own names and channels, and one-sentence refusals."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from conftest import shared_path
from motiondiff.core.errors import UserError
from motiondiff.data.formats.bvh import load_bvh, load_bvh_hierarchy
from motiondiff.data.formats.bvh_to_humanml3d import SMPL22_JOINT_MAPS, map_joints
from motiondiff.data.kinematics.skeleton import SMPL22_NAMES, SMPL22_PARENTS, subset_parents
from motiondiff.export.retarget import bone_angles, retarget_to_bvh
from test_export_bvh import assert_bvhio_agrees, procedural

TARGETS = {"Gangnam-Style.bvh": "mixamo", "proud.bvh": "cmu"}
# CMU joints at zero offsets that lie on a mapped bone: they swing so that the bone follows the source.
CMU_CARRIERS = {"LHipJoint", "RHipJoint", "LowerBack", "Neck", "LeftShoulder", "RightShoulder"}
# The bones (into these SMPL22 joints) from a joint with several children: their directions follow the source
# up to the difference between the two rest poses' shapes of that group (Mixamo's hips sit higher and wider).
GROUP_BONES = {"left_hip", "right_hip", "spine1", "neck", "left_collar", "right_collar"}
CHAIN_BOUND_DEG = 0.5  # lone bones point exactly where the source's do (measured: under 1e-5 deg)
GROUP_BOUND_DEG = 25.0  # measured on Mixamo: 19.5 deg (the real motion's hips), 8.2 (procedural walk)
CMU_MAPPED_BOUND_DEG = 45.0  # measured 38.8: CMU lacks spine2 and the collars, the map puts them on straight bones


def motions() -> dict:
    """The real HumanML3D motion and a procedural walk, (T, 22, 3) metres."""
    real = np.load(shared_path("humanml3d_sample", "new_joints", "012314.npy")).astype(np.float64)
    return {"real": real, "walk": procedural("walk", 80, direction="forward")}


def target_file(name: str):
    return shared_path("bvh", name)


def test_the_hierarchy_reader_keeps_the_file_as_declared():
    mixamo = load_bvh_hierarchy(target_file("Gangnam-Style.bvh"))
    assert mixamo.declared_names[:2] == ("mixamorig:Hips", "mixamorig:Spine") and len(mixamo.declared_names) == 67
    assert mixamo.skeleton.names[:2] == ("Hips", "Spine")
    assert mixamo.channels[0] == ("Xposition", "Yposition", "Zposition", "Xrotation", "Yrotation", "Zrotation")
    assert mixamo.rotation_order(1) == "XYZ"
    assert mixamo.end_sites[mixamo.skeleton.index("HeadTop_End")] == (0.0, 30.592346, 0.0)
    assert mixamo.end_sites[0] is None
    cmu = load_bvh_hierarchy(target_file("proud.bvh"))
    assert cmu.rotation_order(0) == "ZYX" and len(cmu.declared_names) == 31
    assert np.array_equal(cmu.skeleton.offsets, load_bvh(target_file("proud.bvh")).skeleton.offsets)


@pytest.mark.parametrize("motion_name", ["real", "walk"])
@pytest.mark.parametrize("target_name", list(TARGETS))
def test_retargeted_bones_follow_the_source(tmp_path, target_name, motion_name):
    source = motions()[motion_name]
    key = TARGETS[target_name]
    result = retarget_to_bvh(tmp_path / "out.bvh", source, target_file(target_name))
    assert (result.joint_map, result.frames, result.fps) == (key, len(source), 20.0)

    # the file is the user's skeleton, as declared
    theirs, ours = load_bvh_hierarchy(target_file(target_name)), load_bvh_hierarchy(result.path)
    assert ours.declared_names == theirs.declared_names and ours.channels == theirs.channels
    assert np.allclose(ours.skeleton.offsets, theirs.skeleton.offsets, atol=1e-6)
    assert ours.end_sites == theirs.end_sites
    assert_bvhio_agrees(result.path)

    clip = load_bvh(result.path)
    names, mapping = clip.skeleton.names, SMPL22_JOINT_MAPS[key]
    moved = map_joints(clip.positions(), names, mapping)  # (T, 22, 3) file units
    angles = bone_angles(source, moved)  # (T, 21)
    assert result.max_angle_deg == pytest.approx(angles.max(), abs=1e-3)
    assert np.median(angles) < 1.0
    bone_into = SMPL22_NAMES[1:]
    kept = [j for j, name in enumerate(SMPL22_NAMES) if isinstance(mapping[name], str)]
    kept_parents = subset_parents(SMPL22_PARENTS, kept)
    on_target = [kept[k] for k in range(1, len(kept))]  # SMPL22 joints whose bone (from the mapped parent) is real
    for joint, parent in zip(on_target, [kept[p] for p in kept_parents[1:]]):
        u = source[:, joint] - source[:, parent]
        v = moved[:, joint] - moved[:, parent]
        cos = np.sum(u * v, -1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1)
        error = np.degrees(np.arccos(np.clip(cos, -1, 1))).max()
        group = key == "mixamo" and SMPL22_NAMES[joint] in GROUP_BONES
        assert error < (GROUP_BOUND_DEG if group else CHAIN_BOUND_DEG), (SMPL22_NAMES[joint], error)
    if key == "cmu":
        assert angles.max() < CMU_MAPPED_BOUND_DEG
    else:
        assert angles.max() < GROUP_BOUND_DEG
        assert max(angles[:, bone_into.index(name)].max() for name in bone_into if name not in GROUP_BONES) < 0.5

    # unmapped joints (fingers, eyes, end joints) keep their rest rotation
    mapped = {spec for spec in mapping.values() if isinstance(spec, str)}
    still = [i for i, name in enumerate(names) if name not in mapped and name not in CMU_CARRIERS]
    fingers = [i for i in still if any(part in names[i] for part in ("Hand", "Finger", "Thumb"))]
    assert len(fingers) >= 6
    assert np.abs(clip.local_rotations[:, still] - np.eye(3)).max() < 1e-5

    # the root follows the source pelvis, scaled by the legs (to centimetres for Mixamo)
    hips = clip.positions()[:, names.index(mapping["pelvis"])]
    assert np.abs(hips - source[:, 0] * result.units_per_metre).max() < 1e-3 * result.units_per_metre

    # knees and elbows bend about the target's own hinge axes (x, y at its rest, T-pose, facing +z): a twist
    # carried wrongly from the source would turn those axes about the bone
    for joint, hinge in (("left_knee", 0), ("right_knee", 0), ("left_elbow", 1), ("right_elbow", 1)):
        bend = Rotation.from_matrix(clip.local_rotations[:, names.index(mapping[joint])]).as_rotvec()  # (T, 3)
        bent = np.linalg.norm(bend, axis=-1) > np.radians(20)
        assert bent.sum() > 10
        axes = bend[bent] / np.linalg.norm(bend[bent], axis=-1, keepdims=True)
        assert np.linalg.norm(axes.mean(axis=0)) > 0.9  # one axis: measured 0.94 to 1.00
        assert abs(axes.mean(axis=0)[hinge]) > 0.8  # measured 0.86 to 0.99


def test_refusals_are_one_sentence(tmp_path):
    source = motions()["walk"]
    text = target_file("proud.bvh").read_text()
    lacking = tmp_path / "no_knees.bvh"
    lacking.write_text(text.replace("JOINT LeftLeg", "JOINT LeftShin").replace("JOINT RightLeg", "JOINT RightShin"))
    with pytest.raises(UserError) as caught:
        retarget_to_bvh(tmp_path / "a.bvh", source, lacking)
    message = str(caught.value)
    assert "lacks 2 body joints under joint map 'cmu': left_knee (LeftLeg), right_knee (RightLeg)" in message
    assert message.endswith("use a humanoid BVH with Mixamo or CMU joint names.")
    broken = source.copy()
    broken[3, 0, 0] = np.inf
    with pytest.raises(UserError, match=r"NaN or infinite positions \(first in frame 3\)"):
        retarget_to_bvh(tmp_path / "b.bvh", broken, target_file("proud.bvh"))
    with pytest.raises(UserError, match="Unknown joint_map 'smpl'"):
        retarget_to_bvh(tmp_path / "c.bvh", source, target_file("proud.bvh"), joint_map="smpl")
    taken = tmp_path / "taken.bvh"
    taken.write_text("mine")
    with pytest.raises(UserError, match="taken.bvh' already exists: BVH export never overwrites a file"):
        retarget_to_bvh(taken, source, target_file("proud.bvh"))
    assert taken.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["no_knees.bvh", "taken.bvh"]

"""BVH loading, resampling, joint selection and projection, on hand-made files and the real clips in ../shared."""

import re
from pathlib import Path

import numpy as np
import pytest

from motiondiff.core.errors import UserError
from motiondiff.data.formats.bvh import (
    JOINT_MAPS,
    _fps_from_frame_time,
    load_bvh,
    load_bvh_keypoints,
    project_orthographic,
    resample,
    select_joints,
)
from motiondiff.data.kinematics.skeleton import BODY20_NAMES, BODY20_PARENTS, bone_lengths

BVH_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "bvh"
# The README table of ../shared/data/bvh: file -> (frames, fps, joints).
REAL_CLIPS = {
    "Gangnam-Style.bvh": (742, 60.0, 67),
    "Walk-In-Circle.bvh": (753, 60.0, 65),
    "Crab-dance-long.bvh": (384, 30.0, 56),
    "proud.bvh": (326, 120.0, 31),
    "normal.bvh": (360, 120.0, 31),
}
_cache = {}


def real_clip(name):
    """A real clip from ../shared (loaded once per session), or skip when ../shared is absent."""
    if not BVH_DIR.is_dir():
        pytest.skip(f"real BVH clips not available: {BVH_DIR} is absent (it lives in ../shared beside the project)")
    if name not in _cache:
        _cache[name] = load_bvh(BVH_DIR / name)
    return _cache[name]


# A three-joint chain: hip (root, 6 channels) -> arm (offset (1, 0, 0)) -> hand (offset (0, 2, 0)) -> End Site.
TINY_BVH = """HIERARCHY
ROOT ns:hip
{{
  OFFSET 9 9 9
  CHANNELS 6 Xposition Yposition Zposition {root_rot}
  JOINT ns:arm
  {{
    OFFSET 1 0 0
    CHANNELS 3 {arm_rot}
    JOINT ns:hand
    {{
      OFFSET 0 2 0
      CHANNELS 3 {arm_rot}
      End Site
      {{
        OFFSET 0 1 0
      }}
    }}
  }}
}}
MOTION
Frames: 2
Frame Time: 0.5
{frame0}
{frame1}
"""


def write(tmp_path, text, name="tiny.bvh"):
    path = tmp_path / name
    path.write_text(text)
    return path


def tiny(tmp_path, order="XYZ", root_angles=None):
    """The tiny chain with rotation channels in `order`; frame 0 has root X=90, Y=90 and arm Z=90, frame 1 rests."""
    root_angles = root_angles or {"X": 90, "Y": 90, "Z": 0}
    arm_angles = {"X": 0, "Y": 0, "Z": 90}
    rot = " ".join(f"{axis}rotation" for axis in order)
    angles = [*(str(root_angles[a]) for a in order), *(str(arm_angles[a]) for a in order)]
    frame0 = " ".join(["1 2 3", *angles, "0 0 0"])
    frame1 = "3 2 3 0 0 0 0 0 0 0 0 0"
    return write(tmp_path, TINY_BVH.format(root_rot=rot, arm_rot=rot, frame0=frame0, frame1=frame1))


# ---------------------------------------------------------------- hand-made files


def test_tiny_bvh_structure(tmp_path):
    clip = load_bvh(tiny(tmp_path))
    assert clip.skeleton.names == ("hip", "arm", "hand")  # namespaces stripped, End Site is not a joint
    assert clip.skeleton.parents == (-1, 0, 1)
    assert clip.fps == 2.0
    assert clip.local_rotations.shape == (2, 3, 3, 3) and clip.local_translations.shape == (2, 3, 3)
    np.testing.assert_array_equal(clip.local_translations[:, 0], [[1, 2, 3], [3, 2, 3]])  # position replaces offset
    np.testing.assert_array_equal(clip.skeleton.offsets, [[9, 9, 9], [1, 0, 0], [0, 2, 0]])


def test_xyz_order_matches_hand_computation(tmp_path):
    # R_root = Rx(90) @ Ry(90): (1,0,0) -> Ry -> (0,0,-1) -> Rx -> (0,1,0).
    # R_arm = Rz(90): (0,2,0) -> (-2,0,0); then R_root: (-2,0,0) -> (0,0,2) -> (0,-2,0).
    positions = load_bvh(tiny(tmp_path, "XYZ")).positions()
    np.testing.assert_allclose(positions[0], [[1, 2, 3], [1, 3, 3], [1, 1, 3]], atol=1e-12)
    np.testing.assert_allclose(positions[1], [[3, 2, 3], [4, 2, 3], [4, 4, 3]], atol=1e-12)  # rest pose


def test_zyx_order_matches_hand_computation(tmp_path):
    # Same angles, channels Z Y X: R_root = Rz(0) @ Ry(90) @ Rx(90): (1,0,0) -> Rx -> (1,0,0) -> Ry -> (0,0,-1).
    # R_arm = Rz(90): (0,2,0) -> (-2,0,0); then R_root: (-2,0,0) -> Rx -> (-2,0,0) -> Ry -> (0,0,2).
    positions = load_bvh(tiny(tmp_path, "ZYX")).positions()
    np.testing.assert_allclose(positions[0], [[1, 2, 3], [1, 2, 2], [1, 2, 4]], atol=1e-12)


def test_position_channels_on_a_child_replace_its_offset(tmp_path):
    text = (
        "HIERARCHY\nROOT a\n{\n OFFSET 0 0 0\n CHANNELS 3 Zrotation Xrotation Yrotation\n"
        " JOINT b\n {\n  OFFSET 1 0 0\n  CHANNELS 4 Yposition Zrotation Xrotation Yrotation\n"
        "  End Site\n  {\n   OFFSET 0 1 0\n  }\n }\n}\n"
        "MOTION\nFrames: 1\nFrame Time: 0.0333333\n90 0 0 5 0 0 0\n"
    )
    clip = load_bvh(write(tmp_path, text))
    np.testing.assert_array_equal(clip.local_translations[0, 1], [1, 5, 0])  # only y replaced
    np.testing.assert_allclose(clip.positions()[0, 1], [-5, 1, 0], atol=1e-12)  # Rz(90) @ (1, 5, 0)
    assert clip.fps == 30.0  # 0.0333333 s is 1/30 to the printed precision
    for printed, fps in (("0.016667", 60), ("0.0333", 30), ("0.033", 30), ("0.042", 24), ("0.067", 15), ("0.03", 30)):
        assert _fps_from_frame_time(printed) == fps, printed  # a common rate's frame time, rounded as printed
    for printed, fps in (
        ("0.017", 60),
        ("0.011", 90),
        ("0.0069", 144),
        ("0.0042", 240),
        ("0.0303", 33),
        ("0.016666", 60),
    ):
        assert _fps_from_frame_time(printed) == fps, printed  # a common rate first, else the nearest whole one
    assert _fps_from_frame_time("0.033367") == pytest.approx(29.97, rel=1e-4)  # NTSC: no whole rate prints so
    for printed, fps in (("0.08", 12.5), ("0.04", 25), ("0.5", 2), ("0.008", 125)):
        assert _fps_from_frame_time(printed) == fps, printed  # printed exactly: 0.08 is KIT-ML's 12.5 fps, not 12
    assert load_bvh(write(tmp_path, text.replace("0.0333333", "0.08"))).fps == 12.5


def test_resample_slerps_rotations_and_lerps_translations(tmp_path):
    clip = load_bvh(tiny(tmp_path, root_angles={"X": 0, "Y": 0, "Z": 0}))  # arm: Rz(90) -> rest; root x: 1 -> 3
    double = resample(clip, 4.0)  # 2 fps -> 4 fps: times 0, 0.25, 0.5
    assert double.num_frames == 3 and double.fps == 4.0
    arm = double.local_rotations[:, 1]  # (3, 3, 3): rotations about z
    np.testing.assert_allclose(np.degrees(np.arctan2(arm[:, 1, 0], arm[:, 0, 0])), [90, 45, 0], atol=1e-9)
    np.testing.assert_allclose(double.local_translations[:, 0, 0], [1, 2, 3])
    np.testing.assert_array_equal(double.local_translations[:, 1:], clip.local_translations[[0, 0, 0], 1:])


def test_resample_to_the_same_fps_is_identity(tmp_path):
    clip = load_bvh(tiny(tmp_path))
    same = resample(clip, clip.fps)
    np.testing.assert_array_equal(same.local_rotations, clip.local_rotations)
    np.testing.assert_array_equal(same.local_translations, clip.local_translations)
    with pytest.raises(UserError, match="positive"):
        resample(clip, 0)


# ---------------------------------------------------------------- projection


def test_projection_front_side_top_and_z_up():
    positions = np.random.default_rng(0).normal(size=(4, 5, 3))
    x, y, z = positions[..., 0], positions[..., 1], positions[..., 2]
    front = project_orthographic(positions)
    assert front.shape == (4, 5, 2)
    np.testing.assert_allclose(front, np.stack([x, y], -1))
    # Azimuth 90: the camera orbits right-handed about +y to sit on +x, looking along -x: (-z, y).
    np.testing.assert_allclose(project_orthographic(positions, azimuth_deg=90), np.stack([-z, y], -1), atol=1e-12)
    # Elevation 90: looking straight down, the far side (-z) is up on screen: (x, -z).
    np.testing.assert_allclose(project_orthographic(positions, elevation_deg=90), np.stack([x, -z], -1), atol=1e-12)
    # z-up data: the front view looks along +y and shows (x, z).
    np.testing.assert_allclose(project_orthographic(positions, up_axis="z"), np.stack([x, z], -1), atol=1e-12)


def test_projection_rejects_bad_arguments():
    positions = np.zeros((2, 3, 3))
    with pytest.raises(UserError, match="up_axis"):
        project_orthographic(positions, up_axis="x")
    with pytest.raises(UserError, match="elevation"):
        project_orthographic(positions, elevation_deg=120)
    with pytest.raises(UserError, match=r"\(frames, joints, 3\)"):
        project_orthographic(np.zeros((2, 3)))


# ---------------------------------------------------------------- bad input


def test_missing_file():
    with pytest.raises(UserError, match="no_such_clip.bvh"):
        load_bvh("/nonexistent/no_such_clip.bvh")


def test_text_file_that_is_not_bvh(tmp_path):
    path = write(tmp_path, "time,x,y\n0,1,2\n", "notes.bvh")
    with pytest.raises(UserError, match=r"notes\.bvh.*not a BVH file"):
        load_bvh(path)


def test_truncated_motion_block(tmp_path):
    text = tiny(tmp_path).read_text()
    cut_mid_line = write(tmp_path, text[: text.rindex(" 0 0")], "cut.bvh")  # last frame loses values
    with pytest.raises(UserError, match=r"cut\.bvh.*line 25.*frame 1 has 10 values but the skeleton has 12"):
        load_bvh(cut_mid_line)
    missing_frame = write(tmp_path, text[: text.rindex("3 2 3")], "short.bvh")  # last frame gone
    with pytest.raises(UserError, match=r"short\.bvh.*declares 2 frames but holds 1"):
        load_bvh(missing_frame)
    no_motion = write(tmp_path, text[: text.index("MOTION")], "nomotion.bvh")
    with pytest.raises(UserError, match=r"nomotion\.bvh.*no MOTION block"):
        load_bvh(no_motion)


def test_non_number_in_motion_block(tmp_path):
    text = tiny(tmp_path).read_text().replace("3 2 3 0 0 0", "3 2 abc 0 0 0")
    with pytest.raises(UserError, match=r"garbled\.bvh.*line 25.*frame 1.*not a number: 'abc'"):
        load_bvh(write(tmp_path, text, "garbled.bvh"))


def test_unknown_channel_name(tmp_path):
    text = tiny(tmp_path).read_text().replace("CHANNELS 3 Xrotation", "CHANNELS 3 Wrotation", 1)
    with pytest.raises(UserError, match=r"channels\.bvh.*line 9.*unknown channel name 'Wrotation'"):
        load_bvh(write(tmp_path, text, "channels.bvh"))


def test_unknown_or_unfitting_joint_map(tmp_path):
    clip = load_bvh(tiny(tmp_path))
    with pytest.raises(UserError, match=r"Unknown joint_map 'smpl'.*auto, none, mixamo, cmu"):
        select_joints(clip.skeleton, clip.positions(), "smpl")
    with pytest.raises(UserError, match=r"'mixamo' does not fit .*lacks joints Hips, LeftUpLeg"):
        select_joints(clip.skeleton, clip.positions(), "mixamo")
    names, parents, positions = select_joints(clip.skeleton, clip.positions(), "none")
    assert names == ("hip", "arm", "hand") and parents == (-1, 0, 1) and positions.shape == (2, 3, 3)


# ---------------------------------------------------------------- real clips


@pytest.mark.parametrize("name", REAL_CLIPS)
def test_real_clip_loads_with_readme_counts(name):
    frames, fps, joints = REAL_CLIPS[name]
    clip = real_clip(name)
    assert (clip.num_frames, clip.fps, clip.skeleton.num_joints) == (frames, fps, joints)
    assert not any(":" in n for n in clip.skeleton.names)
    assert np.isfinite(clip.local_translations).all() and np.isfinite(clip.local_rotations).all()


@pytest.mark.parametrize("name", REAL_CLIPS)
def test_real_clip_bone_lengths_are_the_offsets(name):
    clip = real_clip(name)
    offsets = clip.skeleton.offsets
    # In all five files only the root has position channels, so every other translation is its offset.
    assert (clip.local_translations[:, 1:] == offsets[1:]).all()
    lengths = bone_lengths(clip.positions(), clip.skeleton.parents)  # (T, bones)
    expected = np.linalg.norm(offsets[1:], axis=-1)  # parents precede children, so bone k is joint k + 1
    np.testing.assert_allclose(lengths, np.broadcast_to(expected, lengths.shape), rtol=1e-4, atol=1e-9)


def test_resample_real_clip_halves_frames_and_keeps_bones():
    clip = real_clip("Gangnam-Style.bvh")
    half = resample(clip, 30.0)
    assert abs(half.num_frames - clip.num_frames / 2) <= 1 and half.fps == 30.0
    assert (half.num_frames - 1) / half.fps <= (clip.num_frames - 1) / clip.fps
    lengths = bone_lengths(half.positions(), clip.skeleton.parents)
    expected = np.linalg.norm(clip.skeleton.offsets[1:], axis=-1)
    np.testing.assert_allclose(lengths, np.broadcast_to(expected, lengths.shape), rtol=1e-4)
    np.testing.assert_allclose(half.positions(), clip.positions()[::2][: half.num_frames], atol=1e-9)  # same instants


@pytest.mark.parametrize(
    "name, expected_map", [("Gangnam-Style.bvh", "mixamo"), ("Walk-In-Circle.bvh", "mixamo"), ("proud.bvh", "cmu")]
)
def test_auto_maps_humans_to_body20(name, expected_map):
    clip = real_clip(name)
    positions = clip.positions()
    names, parents, body = select_joints(clip.skeleton, positions, "auto")
    assert names == BODY20_NAMES and parents == BODY20_PARENTS and body.shape == (clip.num_frames, 20, 3)
    np.testing.assert_array_equal(body, select_joints(clip.skeleton, positions, expected_map)[2])
    height = body[..., 1]  # y up: head above pelvis above ankles in every frame
    i = BODY20_NAMES.index
    assert (height[:, i("head")] > height[:, i("pelvis")]).all()
    assert (height[:, i("pelvis")] > height[:, i("left_ankle")]).all()
    assert (height[:, i("neck")] > height[:, i("spine3")]).all()


def test_mixamo_map_does_not_fit_cmu_naming():
    clip = real_clip("proud.bvh")
    with pytest.raises(UserError, match=r"'mixamo' does not fit .*lacks joints Spine2"):
        select_joints(clip.skeleton, clip.positions(), "mixamo")


def test_auto_keeps_all_crab_joints_with_a_warning():
    clip = real_clip("Crab-dance-long.bvh")
    with pytest.warns(UserWarning, match=re.escape("No joint map (mixamo, cmu) fits")):
        names, parents, positions = select_joints(clip.skeleton, clip.positions(), "auto")
    assert names == clip.skeleton.names and parents == clip.skeleton.parents and positions.shape == (384, 56, 3)


def test_load_bvh_keypoints_pipeline():
    real_clip("proud.bvh")  # skips without ../shared
    keypoints, names, parents, fps = load_bvh_keypoints(BVH_DIR / "proud.bvh", fps=30.0, azimuth_deg=90)
    assert keypoints.dtype == np.float32 and keypoints.shape == (82, 20, 2)  # 326 frames at 120 fps -> 82 at 30
    assert names == BODY20_NAMES and parents == BODY20_PARENTS and fps == 30.0
    clip = resample(real_clip("proud.bvh"), 30.0)
    positions = select_joints(clip.skeleton, clip.positions(), "cmu")[2]
    np.testing.assert_allclose(keypoints, np.stack([-positions[..., 2], positions[..., 1]], -1), rtol=1e-5, atol=1e-4)
    assert set(JOINT_MAPS) == {"mixamo", "cmu"} and all(len(m) == 20 for m in JOINT_MAPS.values())

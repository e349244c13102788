"""BVH -> HumanML3D: the shared real clips become 22 SMPL joints and the 263 features, written in the
dataset's layout; non-human skeletons, empty captions and existing ids are refused."""

import functools
import re
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from conftest import compose_config, shared_path
from motiondiff.core.errors import UserError
from motiondiff.data.formats.bvh import load_bvh, load_bvh_hierarchy
from motiondiff.data.formats.bvh_to_humanml3d import (
    SMPL22_JOINT_MAPS,
    bvh_to_joints22,
    caption_line,
    convert_bvh_to_humanml3d,
    leg_length,
    run,
    up_axis_of,
)
from motiondiff.data.kinematics.skeleton import SMPL22_NAMES, SMPL22_PARENTS, bone_lengths
from motiondiff.data.representations import humanml3d_features as hml

# file: (frames, fps) as the shared README lists them.
CLIPS = {
    "Walk-In-Circle.bvh": (753, 60),
    "Gangnam-Style.bvh": (742, 60),
    "proud.bvh": (326, 120),
    "normal.bvh": (360, 120),
}


@functools.lru_cache(maxsize=None)
def joints_of(name: str) -> np.ndarray:
    """The clip's 22 joints (loaded once per test session)."""
    return bvh_to_joints22(shared_path("bvh", name))


@pytest.mark.parametrize("name", sorted(CLIPS))
def test_shared_clips_become_22_human_sized_joints(name):
    joints = joints_of(name)
    frames, fps = CLIPS[name]
    assert joints.shape == ((frames - 1) * 20 // fps + 1, 22, 3) and np.isfinite(joints).all()
    lengths = bone_lengths(joints, SMPL22_PARENTS)  # (T, 21)
    assert (lengths.max(0) - lengths.min(0)).max() < 1e-9 * lengths.max()  # rigid bones: FK of one skeleton
    assert lengths.min() > 0.02  # no joint collapsed onto its parent (CMU's zero-offset joints are bridged)
    assert 0.5 < leg_length(joints) < 1.2  # metres (Walk: cm; the others: scaled to a human leg)
    names = list(SMPL22_NAMES)
    head, pelvis, ankles = (joints[:, names.index(n), 1].mean() for n in ("head", "pelvis", "left_ankle"))
    assert head > pelvis + 0.3 > ankles + 0.6  # y is up
    across = joints[:, names.index("left_hip")] - joints[:, names.index("right_hip")]  # (T, 3)
    forward = joints[:, names.index("left_foot")] - joints[:, names.index("left_ankle")]  # (T, 3)
    assert (np.cross(across, forward)[:, 1] < 0).mean() > 0.9  # left is on the left: left x toes-forward points down


@pytest.mark.parametrize("name", ["Walk-In-Circle.bvh", "Gangnam-Style.bvh"])
@pytest.mark.parametrize("offsets", [None, hml.REFERENCE_OFFSETS], ids=["own-bones", "reference-bones"])
def test_real_clips_round_trip_through_the_features(name, offsets):
    joints = joints_of(name)
    features = hml.joints_to_features(joints, target_offsets=offsets)
    canonical = hml.canonicalize_joints(joints, offsets)
    assert np.abs(hml.features_to_joints(features) - canonical[:-1]).max() < 1e-4  # measured ~2e-7
    feet = canonical[:, [hml.FOOT_JOINTS]].squeeze(1)[..., 1]  # (T, 4) heights
    assert feet.min() == 0.0  # the lowest joint of the clip is a foot, on the floor
    # Measured: the lowest foot joint of each frame is at most 2.5 cm (walk) / 5.5 cm (dance, hops) up.
    assert np.median(feet.min(1)) < 0.03 and feet.min(1).max() < 0.08
    contacts = features[:, hml.feature_slices()["foot_contact"]]
    assert 0.2 < contacts.mean() < 0.8  # feet alternate between planted and moving


def test_walk_in_circle_turns_a_full_circle():
    features = hml.joints_to_features(joints_of("Walk-In-Circle.bvh"))
    assert 300 < abs(np.degrees(2 * features[:, 0].sum())) < 400  # measured 346 over the clip


def test_convert_writes_the_humanml3d_layout(tmp_path):
    motion = convert_bvh_to_humanml3d(shared_path("bvh", "proud.bvh"), tmp_path, "A person walks proudly.", "000001")
    features = np.load(tmp_path / "new_joint_vecs" / "000001.npy")
    joints = np.load(tmp_path / "new_joints" / "000001.npy")
    assert motion.frames == len(features) == 54 and features.shape == (54, 263) and joints.shape == (54, 22, 3)
    assert features.dtype == joints.dtype == np.float32
    assert np.abs(hml.features_to_joints(features) - joints).max() < 1e-6  # as the dataset: joints from features
    assert np.allclose(bone_lengths(joints.astype(np.float64), SMPL22_PARENTS), hml.REFERENCE_BONE_LENGTHS, atol=1e-5)
    text = (tmp_path / "texts" / "000001.txt").read_text()
    assert text == "A person walks proudly.#a/DET person/NOUN walk/VERB proudly/ADV#0.0#0.0\n"
    assert motion.text_path == tmp_path / "texts" / "000001.txt"


def test_convert_refuses_to_overwrite(tmp_path):
    clip = shared_path("bvh", "normal.bvh")
    first = convert_bvh_to_humanml3d(clip, tmp_path, "a person walks")
    assert first.motion_id == "normal"
    before = first.features_path.read_bytes()
    with pytest.raises(UserError, match="'normal' already exists"):
        convert_bvh_to_humanml3d(clip, tmp_path, "another caption")
    assert first.features_path.read_bytes() == before
    assert convert_bvh_to_humanml3d(clip, tmp_path, "a person walks", motion_id="normal_2").frames == first.frames


def test_a_crab_is_no_human(tmp_path):
    with pytest.raises(UserError, match=r"Crab-dance-long\.bvh.*not a human.*pelvis \(Hips\).*left_wrist") as error:
        convert_bvh_to_humanml3d(shared_path("bvh", "Crab-dance-long.bvh"), tmp_path, "a crab dances")
    assert "22 body joints" in str(error.value)
    assert not any(tmp_path.iterdir())


def test_a_joint_map_that_does_not_fit_names_the_missing_joints():
    with pytest.raises(UserError, match=r"neck \(Neck1\)"):
        bvh_to_joints22(shared_path("bvh", "Walk-In-Circle.bvh"), joint_map="cmu")
    with pytest.raises(UserError, match="Unknown joint_map 'smplx'"):
        bvh_to_joints22(shared_path("bvh", "Walk-In-Circle.bvh"), joint_map="smplx")


def test_every_joint_map_places_all_22_joints():
    for mapping in SMPL22_JOINT_MAPS.values():
        assert set(mapping) == set(SMPL22_NAMES)


@pytest.mark.parametrize("caption", ["", "   ", None, "a#b"])
def test_bad_captions_are_refused(caption):
    with pytest.raises(UserError, match="caption"):
        caption_line(caption)


def test_explicit_scale(tmp_path):
    centimetres = joints_of("Walk-In-Circle.bvh")
    assert np.allclose(bvh_to_joints22(shared_path("bvh", "Walk-In-Circle.bvh"), scale=0.01), centimetres)
    with pytest.raises(UserError, match="scale"):
        bvh_to_joints22(shared_path("bvh", "Walk-In-Circle.bvh"), scale=-1)


def test_cli_run_converts_one_clip(tmp_path):
    out_root = tmp_path / "hml"
    overrides = [
        f"bvh={shared_path('bvh', 'Walk-In-Circle.bvh')}",
        "caption=a person walks in a circle",
        f"out_root={out_root}",
        "motion_id=walk",
    ]
    cfg = compose_config("convert_bvh", tmp_path / "run", overrides)
    motion = run(cfg)
    assert motion.frames == 250 and (out_root / "new_joint_vecs" / "walk.npy").is_file()
    expected = "a person walks in a circle#a/DET person/NOUN walk/VERB in/ADP a/DET circle/NOUN"
    assert (out_root / "texts" / "walk.txt").read_text().startswith(expected)
    with pytest.raises(UserError, match="already exists"):
        run(cfg)
    with pytest.raises(UserError, match="caption is empty"):
        run(compose_config("convert_bvh", tmp_path / "run2", [*overrides[:1], f"out_root={out_root}", "motion_id=w2"]))
    with pytest.raises(UserError, match="bvh="):
        run(compose_config("convert_bvh", tmp_path / "run3", ["caption=x"]))


def write_turned(source: Path, target: Path, turn: np.ndarray, root_only: bool = False) -> None:
    """A copy of a BVH file in a world turned by `turn` (3, 3): every OFFSET, position channel and joint rotation.

    The joints' positions are `turn` times the source's: offsets o -> turn o, local rotations Q -> turn Q turn^T.
    root_only: the skeleton as it was and the root's rotation and position turned (Q -> turn Q, t -> turn t), the
    same positions from a rest pose that stands as before.
    """
    clip, hierarchy = load_bvh(source), load_bvh_hierarchy(source)
    head, motion = source.read_text().split("MOTION", 1)

    def offset(match):
        return "OFFSET " + " ".join(f"{v:.6f}" for v in turn @ np.array([float(x) for x in match.groups()]))

    rotations = turn @ clip.local_rotations @ turn.T  # (T, J, 3, 3)
    translations = clip.local_translations @ turn.T  # (T, J, 3)
    if root_only:
        rotations, translations = clip.local_rotations.copy(), clip.local_translations.copy()
        rotations[:, 0], translations[:, 0] = turn @ rotations[:, 0], translations[:, 0] @ turn.T
    else:
        head = re.sub(r"OFFSET\s+(\S+)\s+(\S+)\s+(\S+)", offset, head)
    columns = []
    for joint, channels in enumerate(hierarchy.channels):
        order = hierarchy.rotation_order(joint)
        angles = Rotation.from_matrix(rotations[:, joint]).as_euler(order, degrees=True) if order else None
        for channel in channels:
            axis = "XYZ".index(channel[0])
            if channel.endswith("position"):
                columns.append(translations[:, joint, axis])
            else:
                columns.append(angles[:, order.index(channel[0])])
    frames = "\n".join(" ".join(f"{v:.6f}" for v in row) for row in np.stack(columns, axis=1))
    header = "\n".join(motion.strip().splitlines()[:2])  # Frames:, Frame Time:
    target.write_text(f"{head}MOTION\n{header}\n{frames}\n")


Y_UP_TO_Z_UP = Rotation.from_euler("x", 90, degrees=True).as_matrix()  # y -> z


@pytest.mark.parametrize("name", ["Walk-In-Circle.bvh", "normal.bvh"])
def test_a_z_up_file_gives_the_joints_of_its_y_up_original(name, tmp_path):
    turned = tmp_path / name
    write_turned(shared_path("bvh", name), turned, Y_UP_TO_Z_UP)
    original = joints_of(name)
    for up_axis in ("auto", "z"):
        joints = bvh_to_joints22(turned, up_axis=up_axis)
        assert np.abs(joints - original).max() < 1e-5, up_axis  # metres; only the 6 printed decimals differ
    assert np.abs(bvh_to_joints22(shared_path("bvh", name), up_axis="y") - original).max() == 0
    lying = bvh_to_joints22(turned, up_axis="y")  # what the file says, taken as y up: the body lies along z
    assert np.abs(lying - original @ Y_UP_TO_Z_UP.T).max() < 1e-5


def test_a_file_whose_spine_is_neither_y_nor_z_needs_its_up_axis(tmp_path):
    turned = tmp_path / "sideways.bvh"
    write_turned(shared_path("bvh", "normal.bvh"), turned, Rotation.from_euler("z", -90, degrees=True).as_matrix())
    with pytest.raises(
        UserError, match=r"sideways\.bvh': its skeleton stands along \(1.00, -0.02, -0.02\).*set up_axis=y"
    ):
        bvh_to_joints22(turned)
    with pytest.raises(UserError, match="up_axis must be 'auto', 'y' or 'z', got 'x'"):
        bvh_to_joints22(turned, up_axis="x")
    overrides = [f"bvh={turned}", "caption=a person walks", f"out_root={tmp_path}/out", "up_axis=y"]
    motion = run(compose_config("convert_bvh", tmp_path / "run", overrides))
    assert motion.frames > 0  # told, the command converts it as it is


def test_a_body_lying_in_a_standing_skeletons_file_is_not_stood_up(tmp_path):
    """The rest pose stands along y, the motion's spine along z (the root turned: a person lying head first, or a
    z-up world put in by the root): auto asks, since the file does not say which; told, it reads either."""
    lying = tmp_path / "lying.bvh"
    write_turned(shared_path("bvh", "normal.bvh"), lying, Y_UP_TO_Z_UP, root_only=True)
    with pytest.raises(UserError, match=r"stands along \(0.02, 1.00, -0.02\) but its motion's spine points along"):
        bvh_to_joints22(lying)
    original = joints_of("normal.bvh")
    assert np.abs(bvh_to_joints22(lying, up_axis="z") - original).max() < 1e-5
    assert np.abs(bvh_to_joints22(lying, up_axis="y") - original @ Y_UP_TO_Z_UP.T).max() < 1e-5


def spine_of(directions) -> np.ndarray:
    """Joints (T, 22, 3) at the origin with the head at each direction (T, 3)."""
    joints = np.zeros((len(directions), 22, 3))
    joints[:, SMPL22_NAMES.index("head")] = directions
    return joints


@pytest.mark.parametrize(
    "rest, motion, axis",
    [
        ([0, 1, 0], [[0, 1, 0]], "y"),
        ([0, 0, 1], [[0.1, 0.2, 0.97]], "z"),
        ([0, 1, 0], [[1, 0, 0], [0, 1, 0]], "y"),  # the motion leans (a crawl): the rest pose decides
        ([1, 0, 0], [[0, 0, 1]], "z"),  # a rig that does not stand at rest: the motion decides
        ([0, 1, 0], [[0, 0, 1]], None),  # they disagree
        ([0, 0.7, 0.7], [[0, 0.7, 0.7]], None),  # 45 degrees: neither
        ([0, -1, 0], [[0, -1, 0]], None),  # y down
        ([0, 0, 0], [[0, 0, 0]], None),  # head on the pelvis
    ],
)
def test_the_up_axis_is_read_from_the_rest_pose_and_the_motion(rest, motion, axis):
    rest_joints, motion_joints = spine_of(np.array([rest], dtype=float)), spine_of(np.array(motion, dtype=float))
    if axis is None:
        with pytest.raises(UserError, match="vertical axis is unclear; set source_up_axis=y"):
            up_axis_of(rest_joints, motion_joints, "clip.bvh", "source_up_axis")
    else:
        assert up_axis_of(rest_joints, motion_joints, "clip.bvh") == axis

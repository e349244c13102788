"""BVH export: joint positions -> BVH -> positions again (our reader and bvhio agree), continuity of the Euler
channels through walks in four facings and a full turn, the KIT-ML tree, and one-sentence refusals."""

import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from conftest import shared_path
from motiondiff.core.errors import UserError
from motiondiff.data.formats.bvh import load_bvh, load_bvh_hierarchy
from motiondiff.data.formats.bvh_write import ORDERS, euler_unwrapped, write_bvh
from motiondiff.data.kinematics.skeleton import (
    KIT21_NAMES,
    KIT21_PARENTS,
    SMPL22_NAMES,
    SMPL22_PARENTS,
    Skeleton,
    forward_kinematics,
)
from motiondiff.data.procedural import actions
from motiondiff.data.representations.feature_skeletons import KIT_SKELETON
from motiondiff.export.bvh import positions_to_bvh

with warnings.catch_warnings():  # bvhio imports PyGLM by its old name
    warnings.simplefilter("ignore", PendingDeprecationWarning)
    import bvhio

TOLERANCE_M = 1e-4  # round trip through the file (values written with 6 decimals)
J = {name: i for i, name in enumerate(SMPL22_NAMES)}


def smooth_rotations(rng, frames: int, joints: int, amplitude: float) -> np.ndarray:
    """Smooth random rotations (T, J, 3, 3): rotation vectors summed from two sinusoids per axis."""
    t = np.linspace(0.0, 1.0, frames)[:, None, None]  # (T, 1, 1)
    vectors = sum(
        rng.uniform(-amplitude, amplitude, (1, joints, 3))
        * np.sin(2 * np.pi * (f * t + rng.uniform(0, 1, (1, joints, 3))))
        for f in (rng.uniform(0.5, 1.5), rng.uniform(1.5, 3.0))
    )  # (T, J, 3)
    return Rotation.from_rotvec(vectors.reshape(-1, 3)).as_matrix().reshape(frames, joints, 3, 3)


def fk_motion(seed: int = 0, frames: int = 120) -> np.ndarray:
    """SMPL22 positions (T, 22, 3) by forward kinematics: rigid bones, smooth random rotations, hinge knees and
    elbows, the pelvis turning a full circle while it walks a circle."""
    rng = np.random.default_rng(seed)
    local = smooth_rotations(rng, frames, 22, 0.5)
    t = np.linspace(0.0, 1.0, frames)
    for knee in ("left_knee", "right_knee"):  # flexion about x, 5..115 degrees
        local[:, J[knee]] = Rotation.from_euler(
            "x", np.radians(60 + 55 * np.sin(2 * np.pi * (t + rng.uniform())))[:, None]
        ).as_matrix()
    for elbow, sign in (("left_elbow", 1), ("right_elbow", -1)):  # about y
        angle = np.radians(sign * (70 + 60 * np.sin(2 * np.pi * (2 * t + rng.uniform()))))
        local[:, J[elbow]] = Rotation.from_euler("y", angle[:, None]).as_matrix()
    yaw = Rotation.from_euler("y", 2 * np.pi * t[:, None]).as_matrix()  # (T, 3, 3)
    local[:, 0] = yaw @ local[:, 0]
    translations = np.tile(actions.SMPL22_REST_OFFSETS, (frames, 1, 1))
    translations[:, 0] = np.stack(
        [np.sin(2 * np.pi * t), 0.95 + 0.05 * np.sin(8 * np.pi * t), np.cos(2 * np.pi * t)], -1
    )
    return forward_kinematics(SMPL22_PARENTS, local, translations)


def procedural(action: str, frames: int, **parameters) -> np.ndarray:
    """A procedural action (T, 22, 3) from the text-motion generator, facing +z at the start."""
    spec = {"action": action, "direction": None, "side": None, "reps": None, "angle": None, "speed": "normal"}
    spec.update(parameters, start=0, end=frames)
    return actions.make_motion({"length": frames, "actions": [spec]}, np.random.default_rng(0))


def turned(positions: np.ndarray, degrees: float) -> np.ndarray:
    """positions (T, J, 3) turned about +y."""
    return positions @ Rotation.from_euler("y", degrees, degrees=True).as_matrix().T


def file_positions(path, names) -> np.ndarray:
    """Positions (T, J, 3) of a BVH file by our reader, in the order of `names` (namespaces stripped)."""
    clip = load_bvh(path)
    return clip.positions()[:, [clip.skeleton.names.index(name.split(":")[-1]) for name in names]]


def bvhio_positions(path) -> tuple:
    """(declared names, world positions (T, J, 3)) of a BVH file by bvhio, an independent parser."""
    root = bvhio.readAsHierarchy(str(path))
    layout = root.layout()  # [(joint, index, depth)], depth first as declared
    frames = root.getKeyframeRange()[1] + 1
    positions = np.empty((frames, len(layout), 3))
    for frame in range(frames):
        root.loadPose(frame)
        positions[frame] = [tuple(joint.PositionWorld) for joint, _, _ in layout]
    return [joint.Name for joint, _, _ in layout], positions


def assert_bvhio_agrees(path) -> None:
    """bvhio's world positions equal our reader's (both in file order, file units)."""
    names, theirs = bvhio_positions(path)
    ours = load_bvh(path)
    assert names == list(load_bvh_hierarchy(path).declared_names)
    scale = max(1.0, np.abs(ours.skeleton.offsets).max())  # bvhio computes in float32
    assert np.abs(theirs - ours.positions()).max() < TOLERANCE_M * scale


def motion_values(path) -> np.ndarray:
    """The MOTION block's values (T, C) as written."""
    lines = Path(path).read_text().split("MOTION")[1].strip().splitlines()[2:]
    return np.array([[float(v) for v in line.split()] for line in lines])


def geodesic_steps(rotations: np.ndarray) -> np.ndarray:
    """Angles (T-1, J) in degrees between consecutive frames of rotations (T, J, 3, 3)."""
    relative = np.swapaxes(rotations[:-1], -1, -2) @ rotations[1:]
    cos = (np.trace(relative, axis1=-2, axis2=-1) - 1) / 2
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def direction_steps(positions: np.ndarray, parents) -> np.ndarray:
    """Angles (T-1, B) in degrees each bone's direction turns between consecutive frames."""
    bones = positions[:, 1:] - positions[:, list(parents[1:])]
    bones /= np.linalg.norm(bones, axis=-1, keepdims=True)
    return np.degrees(np.arccos(np.clip(np.sum(bones[1:] * bones[:-1], axis=-1), -1.0, 1.0)))


def test_fk_motion_round_trips_through_the_file_and_bvhio(tmp_path):
    motion = fk_motion()
    result = positions_to_bvh(tmp_path / "fk.bvh", motion, SMPL22_NAMES, SMPL22_PARENTS, fps=30)
    assert (result.frames, result.fps, result.joints) == (120, 30.0, 22)
    assert result.max_error_m < 1e-9 and result.bone_drift < 1e-9  # rigid bones: exact before writing
    assert np.abs(file_positions(result.path, SMPL22_NAMES) - motion).max() < TOLERANCE_M
    assert load_bvh(result.path).fps == 30.0
    assert_bvhio_agrees(result.path)


def test_the_real_humanml3d_motion_round_trips(tmp_path):
    motion = np.load(shared_path("humanml3d_sample", "new_joints", "012314.npy")).astype(np.float64)  # (170, 22, 3)
    result = positions_to_bvh(tmp_path / "real.bvh", motion, SMPL22_NAMES, SMPL22_PARENTS, fps=20)
    assert result.bone_drift < 1e-4  # its bones are constant to 2e-6 m
    assert result.max_error_m < 1e-5
    assert np.abs(file_positions(result.path, SMPL22_NAMES) - motion).max() < TOLERANCE_M
    # at frame 28 the right elbow straightens and bends the other way: read as a limb plane it asks for a half-turn
    # twist of the upper arm in one frame (144 degrees measured before twists were rate-limited); now at most 20
    # degrees of twist per frame, and the largest step of any joint is 53 degrees (the elbow taking up the rest)
    assert geodesic_steps(load_bvh(result.path).local_rotations).max() < 60.0
    assert_bvhio_agrees(result.path)


def test_in_centimetres_and_any_order(tmp_path):
    motion = fk_motion(seed=1, frames=60)
    for order in ORDERS:
        result = positions_to_bvh(
            tmp_path / f"{order}.bvh", motion, SMPL22_NAMES, SMPL22_PARENTS, 20, order, None, 100.0
        )
        assert f"CHANNELS 3 {' '.join(a + 'rotation' for a in order)}" in result.path.read_text()
        assert np.abs(file_positions(result.path, SMPL22_NAMES) / 100 - motion).max() < TOLERANCE_M
    assert_bvhio_agrees(tmp_path / "YZX.bvh")


def test_bone_length_drift_is_reported_and_is_all_of_the_error(tmp_path):
    motion = fk_motion(seed=2)
    noisy = motion + np.random.default_rng(3).normal(0.0, 0.004, motion.shape)  # 4 mm: a generated motion's drift
    result = positions_to_bvh(tmp_path / "noisy.bvh", noisy, SMPL22_NAMES, SMPL22_PARENTS, fps=20)
    lengths = np.linalg.norm(noisy[:, 1:] - noisy[:, list(SMPL22_PARENTS[1:])], axis=-1)  # (T, 21)
    deviation = np.abs(lengths - np.median(lengths, axis=0)).max()  # the largest bone-length change, metres
    assert result.bone_drift == pytest.approx(np.max(np.ptp(lengths, axis=0) / np.median(lengths, axis=0)))
    # each joint is off by about the length changes along its chain (up to 7 bones) and in the group shapes
    assert deviation < result.max_error_m < 2.5 * deviation  # measured: 1.33 times, for 1 to 10 mm of noise
    distances = np.linalg.norm(file_positions(result.path, SMPL22_NAMES) - noisy, axis=-1)  # (T, 22)
    assert abs(distances.max() - result.max_error_m) < TOLERANCE_M
    assert_bvhio_agrees(result.path)


def test_kit_ml_is_mirrored_back(tmp_path):
    frames = 40
    local = smooth_rotations(np.random.default_rng(4), frames, 21, 0.4)
    offsets = KIT_SKELETON.reference_offsets * np.array([-1.0, 1.0, 1.0])  # as the data: L joints at -x
    translations = np.tile(offsets, (frames, 1, 1))
    translations[:, 0] = [0.0, 950.0, 0.0]
    motion = forward_kinematics(KIT21_PARENTS, local, translations) / 1000  # (T, 21, 3) metres, as generated
    result = positions_to_bvh(tmp_path / "kit.bvh", motion, KIT21_NAMES, KIT21_PARENTS, fps=12.5)
    back = file_positions(result.path, KIT21_NAMES) * np.array([-1.0, 1.0, 1.0])
    assert np.abs(back - motion).max() < TOLERANCE_M
    rest = load_bvh_hierarchy(result.path).skeleton
    assert rest.offsets[rest.index("LS"), 0] > 0 and rest.offsets[rest.index("LH"), 0] > 0  # on the body's left
    assert load_bvh(result.path).fps == 12.5


# The largest local-rotation step of the export, over the input's largest bone-direction step: a bone's swing is
# at most its joint's step, twist can add to it. Measured: walks 30.3 deg vs 30.3 deg, the full turn 11.0 vs 7.2
# (the knee's twist as the turning body shifts its weight). A flip between Euler solutions or to the other side
# of a limb plane shows as a step near 180 degrees, far above this bound.
STEP_FACTOR, STEP_SLACK_DEG = 1.5, 5.0
MAX_CHANNEL_JUMP_DEG = 90.0  # no Euler channel changes more between frames (measured: at most 30.3)


@pytest.mark.parametrize(
    "case", ["facing +z", "facing -z", "facing +x", "facing -x", "turning 360 degrees"], ids=lambda c: c
)
def test_walks_and_turns_stay_continuous_and_face_the_right_way(tmp_path, case):
    if case.startswith("facing"):
        degrees = {"+z": 0.0, "-z": 180.0, "+x": 90.0, "-x": -90.0}[case.split()[1]]
        motion = turned(procedural("walk", 100, direction="forward"), degrees)
    else:
        motion = procedural("turn", 80, direction="left", angle=360)
    result = positions_to_bvh(tmp_path / "walk.bvh", motion, SMPL22_NAMES, SMPL22_PARENTS, fps=20)
    clip = load_bvh(result.path)
    assert np.abs(file_positions(result.path, SMPL22_NAMES) - motion).max() < TOLERANCE_M
    steps = geodesic_steps(clip.local_rotations)  # (T-1, J)
    assert steps.max() < STEP_FACTOR * direction_steps(motion, SMPL22_PARENTS).max() + STEP_SLACK_DEG
    assert np.abs(np.diff(motion_values(result.path)[:, 3:], axis=0)).max() < MAX_CHANNEL_JUMP_DEG
    # the pelvis turns the rest pose's left hip (+x side) onto the input's left hip, in every frame
    names, offsets = clip.skeleton.names, clip.skeleton.offsets
    rest_left = offsets[names.index("left_hip")] - offsets[names.index("right_hip")]
    assert rest_left[0] > 0  # the rest pose faces +z with its left at +x
    left = np.einsum("tab,b->ta", clip.local_rotations[:, names.index("pelvis")], rest_left)
    wanted = motion[:, J["left_hip"]] - motion[:, J["right_hip"]]
    cos = np.sum(left * wanted, -1) / np.linalg.norm(left, axis=-1) / np.linalg.norm(wanted, axis=-1)
    assert cos.min() > 0.99
    if case.startswith("turning"):  # the root's yaw channel (the last of Z X Y) winds a full turn, unwrapped
        yaw = motion_values(result.path)[:, 5]
        assert abs(abs(yaw[-1] - yaw[0]) - 360.0) < 20.0
    assert_bvhio_agrees(result.path)


@pytest.mark.parametrize("order", ORDERS)
def test_euler_angles_unwrap_through_gimbal_lock_and_full_turns(order):
    t = np.linspace(0.0, 1.0, 200)
    angles = np.stack([4 * np.pi * t, np.radians(30 + 120 * t), np.radians(30) * np.sin(6 * t)], -1)
    angles[100, 1] = np.pi / 2  # exactly locked in one frame (the middle angle passes 90 degrees)
    rotations = Rotation.from_euler(order, angles).as_matrix()[:, None]  # (T, 1, 3, 3)
    unwrapped = euler_unwrapped(rotations, order)[:, 0]  # (T, 3)
    assert np.abs(Rotation.from_euler(order, unwrapped).as_matrix() - rotations[:, 0]).max() < 1e-9
    assert np.degrees(np.abs(np.diff(unwrapped, axis=0))).max() < 6.0  # the input moves at most 3.6 deg a frame
    assert np.degrees(unwrapped[-1, 0] - unwrapped[0, 0]) == pytest.approx(720.0, abs=1e-6)


def test_names_are_written_as_given_with_namespaces(tmp_path):
    skeleton = Skeleton(("hip", "leg"), (-1, 0), np.array([[0.0, 1.0, 0.0], [0.0, -0.5, 0.0]]))
    rotations = np.tile(np.eye(3), (3, 2, 1, 1))
    path = write_bvh(tmp_path / "ns.bvh", skeleton, rotations, np.zeros((3, 3)), 30, names=("rig:hip", "rig:leg"))
    assert load_bvh_hierarchy(path).declared_names == ("rig:hip", "rig:leg")
    assert load_bvh(path).skeleton.names == ("hip", "leg")
    assert [p.name for p in tmp_path.iterdir()] == ["ns.bvh"]  # no temporary file left behind


def test_refusals_are_one_sentence(tmp_path):
    motion = fk_motion(frames=10)
    broken = motion.copy()
    broken[4, 7, 1] = np.nan
    with pytest.raises(UserError, match=r"NaN or infinite positions \(first in frame 4\)"):
        positions_to_bvh(tmp_path / "nan.bvh", broken, SMPL22_NAMES, SMPL22_PARENTS, fps=20)
    with pytest.raises(UserError, match="Unknown Euler order 'XYX'; use one of XYZ, XZY, YXZ, YZX, ZXY, ZYX"):
        positions_to_bvh(tmp_path / "order.bvh", motion, SMPL22_NAMES, SMPL22_PARENTS, fps=20, order="XYX")
    existing = tmp_path / "taken.bvh"
    existing.write_text("mine")
    with pytest.raises(UserError, match="taken.bvh' already exists: BVH export never overwrites a file"):
        positions_to_bvh(existing, motion, SMPL22_NAMES, SMPL22_PARENTS, fps=20)
    assert existing.read_text() == "mine"
    skeleton = Skeleton(("hip",), (-1,), np.zeros((1, 3)))
    with pytest.raises(UserError, match="local rotations contain NaN or infinite values"):
        write_bvh(tmp_path / "w.bvh", skeleton, np.full((2, 1, 3, 3), np.nan), np.zeros((2, 3)), 30)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.bvh"]

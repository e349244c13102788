"""Property-based tests (hypothesis): the BVH parser on random skeletons and on garbage, and the
HumanML3D 263-feature conversion on random plausible motions.

Examples are derandomized (the same ones every run, so CI cannot flake) and no example database is
written into the repository; raise max_examples locally to search harder.
"""

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from motiondiff.core.errors import UserError
from motiondiff.data.formats.bvh import load_bvh
from motiondiff.data.kinematics.quaternion import qbetween, qrot
from motiondiff.data.kinematics.skeleton import SMPL22_PARENTS, bone_lengths
from motiondiff.data.procedural.actions import make_motion, pose, sample_spec
from motiondiff.data.representations import humanml3d_features as hml

COMMON = {"deadline": None, "derandomize": True, "database": None, "suppress_health_check": [HealthCheck.too_slow]}


@pytest.fixture(scope="module")
def bvh_path(tmp_path_factory):
    """One file every example overwrites (module-scoped: hypothesis reruns the test body, not the fixture)."""
    return tmp_path_factory.mktemp("bvh") / "random.bvh"


# ---------------------------------------------------------------- random BVH files

POSITIONS = ("Xposition", "Yposition", "Zposition")
FRAME_TIMES = [
    ("0.0333333", 30.0),
    ("0.016667", 60.0),
    ("0.008333", 120.0),
    ("0.05", 20.0),
    ("0.04", 25.0),
    ("0.5", 2.0),
]
coordinate = st.floats(-100, 100, allow_nan=False, allow_infinity=False)
angle = st.floats(-720, 720, allow_nan=False, allow_infinity=False)
# Euler orders: up to three axes, none twice in a row (XYZ, ZYX, YXZ, ..., ZXZ, or fewer).
rotation_axes = st.lists(st.sampled_from("XYZ"), max_size=3).filter(
    lambda axes: all(a != b for a, b in zip(axes, axes[1:]))
)


@st.composite
def bvh_files(draw):
    """(text, expected): a random skeleton written as BVH, and what parsing it must give back.

    Joint j's parent is any earlier joint, so the file's depth-first order is not the drawn order;
    every joint has random rotation channels (any order), the root and some others position channels
    (interleaved at random); some joints carry End Sites; names may have a namespace; whitespace
    and line endings vary.
    """
    count = draw(st.integers(1, 7))
    parents = [-1] + [draw(st.integers(0, j - 1)) for j in range(1, count)]
    name = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,7}", fullmatch=True)
    names = draw(st.lists(name, min_size=count, max_size=count, unique=True))
    joints = []
    for j in range(count):
        with_positions = j == 0 or draw(st.booleans())
        positions = draw(st.permutations(POSITIONS))[: draw(st.integers(0, 3))] if with_positions else []
        rotations = [f"{axis}rotation" for axis in draw(rotation_axes)]
        channels = positions + rotations if draw(st.booleans()) else rotations + positions
        joints.append(
            {
                "name": draw(st.sampled_from(["", "ns:", "mixamorig:"])) + names[j],
                "offset": draw(st.tuples(coordinate, coordinate, coordinate)),
                "channels": channels,
                "end_site": draw(st.none() | st.tuples(coordinate, coordinate, coordinate)),
            }
        )
    order = []  # depth-first, children in drawn order: the order the file lists the joints in

    def visit(j):
        order.append(j)
        for child in range(j + 1, count):
            if parents[child] == j:
                visit(child)

    visit(0)
    frames = draw(st.integers(1, 4))
    values = {
        j: [
            [draw(angle if c.endswith("rotation") else coordinate) for c in joints[j]["channels"]]
            for _ in range(frames)
        ]
        for j in range(count)
    }
    frame_time, fps = draw(st.sampled_from(FRAME_TIMES))
    indent = draw(st.sampled_from([" ", "  ", "\t"]))
    lines = ["HIERARCHY"]

    def write(j, depth):
        pad = indent * depth
        joint = joints[j]
        lines.extend([f"{pad}{'ROOT' if j == 0 else 'JOINT'} {joint['name']}", pad + "{"])
        lines.append(f"{pad}{indent}OFFSET {' '.join(map(repr, joint['offset']))}")
        lines.append(f"{pad}{indent}CHANNELS {len(joint['channels'])} {' '.join(joint['channels'])}".rstrip())
        for child in range(j + 1, count):
            if parents[child] == j:
                write(child, depth + 1)
        if joint["end_site"] is not None:
            end_offset = " ".join(map(repr, joint["end_site"]))
            lines.extend(
                [
                    f"{pad}{indent}End Site",
                    f"{pad}{indent}{{",
                    f"{pad}{indent * 2}OFFSET {end_offset}",
                    f"{pad}{indent}}}",
                ]
            )
        lines.append(pad + "}")

    write(0, 0)
    lines += ["MOTION", f"Frames: {frames}", f"Frame Time: {frame_time}"]
    lines += [" ".join(repr(v) for j in order for v in values[j][t]) for t in range(frames)]
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    position_in_file = {j: i for i, j in enumerate(order)}
    expected = {
        "names": tuple(names[j] for j in order),
        "parents": tuple(-1 if j == 0 else position_in_file[parents[j]] for j in order),
        "offsets": np.array([joints[j]["offset"] for j in order]),
        "channels": [joints[j]["channels"] for j in order],
        "values": [np.array(values[j]).reshape(frames, -1) for j in order],  # (T, channels) per joint
        "frames": frames,
        "fps": fps,
    }
    assume(any(expected["channels"]))  # a file without channels has blank frames (a UserError of its own)
    return newline.join(lines) + newline, expected


def elementary(axis: str, degrees: np.ndarray) -> np.ndarray:
    """Rotation matrices (T, 3, 3) about one axis, written out by hand (not scipy)."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    one, zero = np.ones_like(c), np.zeros_like(c)
    rows = {
        "X": [[one, zero, zero], [zero, c, -s], [zero, s, c]],
        "Y": [[c, zero, s], [zero, one, zero], [-s, zero, c]],
        "Z": [[c, -s, zero], [s, c, zero], [zero, zero, one]],
    }[axis]
    return np.moveaxis(np.array(rows), -1, 0)


def expected_local(channels, offset, values):
    """(rotations (T, 3, 3), translations (T, 3)): the channels applied in the order listed (intrinsic)."""
    frames = len(values)
    rotation = np.tile(np.eye(3), (frames, 1, 1))
    translation = np.tile(np.asarray(offset, dtype=float), (frames, 1))
    for column, channel in enumerate(channels):
        if channel.endswith("position"):
            translation[:, POSITIONS.index(channel)] = values[:, column]
        else:
            rotation = rotation @ elementary(channel[0], values[:, column])
    return rotation, translation


@settings(max_examples=150, **COMMON)
@given(bvh_files())
def test_random_skeletons_parse_back_as_written(bvh_path, case):
    text, expected = case
    bvh_path.write_bytes(text.encode())
    clip = load_bvh(bvh_path)
    assert clip.skeleton.names == expected["names"]  # namespaces stripped, End Sites not joints, file order
    assert clip.skeleton.parents == expected["parents"]
    assert clip.num_frames == expected["frames"] and clip.fps == expected["fps"]
    np.testing.assert_array_equal(clip.skeleton.offsets, expected["offsets"])  # repr round-trips exactly
    lengths = []
    for j, (channels, values) in enumerate(zip(expected["channels"], expected["values"])):
        rotation, translation = expected_local(channels, expected["offsets"][j], values)
        np.testing.assert_allclose(clip.local_rotations[:, j], rotation, atol=1e-12)
        np.testing.assert_array_equal(clip.local_translations[:, j], translation)
        lengths.append(np.linalg.norm(translation, axis=-1))  # (T,)
    positions = clip.positions()  # (T, J, 3)
    np.testing.assert_array_equal(positions[:, 0], clip.local_translations[:, 0])
    if len(expected["names"]) > 1:
        # Forward kinematics only rotates bones: each bone is as long as its offset (its position channels, if any).
        # Coordinates are below 100 and chains at most 7 deep, so rounding stays far below 1e-9.
        expected_lengths = np.stack(lengths[1:], axis=-1)  # (T, bones)
        np.testing.assert_allclose(
            bone_lengths(positions, clip.skeleton.parents), expected_lengths, rtol=1e-10, atol=1e-9
        )


# Words a corrupted file might hold in place of another: keywords, numbers valid and not, punctuation, noise.
JUNK = [
    "HIERARCHY",
    "ROOT",
    "JOINT",
    "End",
    "Site",
    "{",
    "}",
    "OFFSET",
    "CHANNELS",
    "MOTION",
    "Frames:",
    "Frame",
    "Time:",
    "Xrotation",
    "Zposition",
    "Wrotation",
    "0",
    "-1",
    "3",
    "6",
    "99999999999",
    "1e400",
    "-1e400",
    "1e-400",
    "nan",
    "inf",
    "0.0",
    "1e308",
    "abc",
    "ns:",
    ":",
    "#",
    "",
    "\x00",
    "\u0663",
    "Frames: 1",
    "Frame Time: 0",
]


@st.composite
def corrupted_bvh(draw):
    """A valid random file with 1-3 corruptions (a word replaced, a line dropped, doubled or inserted, noise
    inserted), then perhaps cut short (once, last: cuts in a row would mostly leave nothing)."""
    text, _ = draw(bvh_files())
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["word", "drop line", "double line", "insert", "noise"]))
        if kind == "word":
            pieces = re.split(r"(\s+)", text)  # words at even indices, whitespace between
            if len(pieces) > 1:
                pieces[2 * draw(st.integers(0, (len(pieces) - 1) // 2))] = draw(st.sampled_from(JUNK))
            text = "".join(pieces)
        elif kind in ("drop line", "double line", "insert"):
            lines = text.split("\n")
            at = draw(st.integers(0, len(lines) - 1))
            if kind == "drop line":
                del lines[at]
            else:
                junk = " ".join(draw(st.lists(st.sampled_from(JUNK), max_size=4)))
                lines.insert(at, lines[at] if kind == "double line" else junk)
            text = "\n".join(lines)
        else:
            at = draw(st.integers(0, len(text)))
            text = text[:at] + draw(st.text(max_size=12)) + text[at:]
    if draw(st.booleans()):
        text = text[: draw(st.integers(0, len(text)))]
    return text.encode("utf-8", errors="surrogatepass")


def parses_or_user_error(path, data: bytes) -> None:
    """load_bvh either gives a clip with finite local transforms or raises UserError, nothing else."""
    path.write_bytes(data)
    try:
        clip = load_bvh(path)
    except UserError as error:
        assert str(error).startswith(f"BVH file '{path}'") and "\n" not in str(error)
        return
    assert clip.num_frames >= 1 and clip.fps > 0
    assert np.isfinite(clip.local_rotations).all() and np.isfinite(clip.local_translations).all()
    with np.errstate(over="ignore", invalid="ignore"):  # values near 1e308 may overflow when added up
        assert clip.positions().shape == (clip.num_frames, clip.skeleton.num_joints, 3)


@settings(max_examples=300, **COMMON)
@given(corrupted_bvh())
def test_corrupted_bvh_parses_or_raises_user_error(bvh_path, data):
    parses_or_user_error(bvh_path, data)


@settings(max_examples=100, **COMMON)
@given(
    st.binary(max_size=200)
    | st.text(max_size=200).map(lambda t: ("HIERARCHY\nROOT " + t).encode("utf-8", "surrogatepass"))
)
def test_arbitrary_bytes_parse_or_raise_user_error(bvh_path, data):
    parses_or_user_error(bvh_path, data)


# ---------------------------------------------------------------- the 263 HumanML3D features
#
# Round-trip tolerance: features are float32 (relative rounding 6e-8), and features_to_joints integrates
# the root's yaw and XZ velocity over up to 196 frames, so rounding adds up along the path: at most
# 196 * 6e-8 rad of yaw (turning points 1 m from the root by ~1.2e-5 m) plus 196 steps of below 0.3 m
# each rounded to ~2e-8 m (4e-6 m), below 2e-5 m in all; 1e-4 leaves a margin of five. (Measured: 2.6e-7 at most
# over 400 random motions.)
ROUND_TRIP_TOLERANCE = 1e-4


def procedural(seed: int) -> np.ndarray:
    """Joints (T, 22, 3), 41..197 frames: a random action plan of the embedded procedural dataset."""
    rng = np.random.default_rng(seed)
    return make_motion(sample_spec(rng), rng)


def yaw(radians) -> np.ndarray:
    """Rotations (..., 3, 3) about +y."""
    c, s = np.cos(radians), np.sin(radians)
    zero, one = np.zeros_like(c), np.ones_like(c)
    return np.moveaxis(np.array([[c, zero, s], [zero, one, zero], [-s, zero, c]]), (0, 1), (-2, -1))


@st.composite
def carried_rest_poses(draw):
    """Joints (T, 22, 3): the rest skeleton carried along a random smooth path, turning smoothly (< 1.5 rad/s)."""
    frames = draw(st.integers(10, 120))
    t = np.arange(frames) / hml.FPS  # (T,) seconds
    amplitude = st.floats(-1.0, 1.0)
    frequency = st.floats(0.05, 0.5)  # Hz: slow enough that the yaw rate stays below 2 * pi * 0.5 * 0.45 ~ 1.4 rad/s
    heading = draw(st.floats(-np.pi, np.pi)) + draw(st.floats(-0.45, 0.45)) * np.sin(2 * np.pi * draw(frequency) * t)
    path = np.stack(
        [draw(amplitude) * np.sin(2 * np.pi * draw(frequency) * t + draw(st.floats(0, 6))) for _ in "xyz"], -1
    )
    path[:, 1] *= 0.1  # a little bob
    rest = pose(np.zeros((1, 22, 3)))[0]  # (22, 3), the pelvis at its rest height
    body = np.einsum("tab,jb->tja", yaw(heading), rest - rest[0]) + rest[0]  # (T, 22, 3), turned about the pelvis
    return body + path[:, None] + [draw(st.floats(-5, 5)), 0.0, draw(st.floats(-5, 5))]


motions = st.one_of(st.integers(0, 2**32 - 1).map(procedural), carried_rest_poses())


@settings(max_examples=40, **COMMON)
@given(motions)
def test_features_round_trip_to_the_canonical_joints(joints):
    features = hml.joints_to_features(joints)
    assert features.shape == (len(joints) - 1, hml.FEATURES) and features.dtype == np.float32
    assert np.isfinite(features).all()
    assert set(np.unique(features[:, hml.feature_slices()["foot_contact"]])) <= {0.0, 1.0}
    canonical = hml.canonicalize_joints(joints)
    # The canonical placement moves the body rigidly: same bones, lowest joint on the floor, root starting at x = z = 0.
    np.testing.assert_allclose(bone_lengths(canonical, SMPL22_PARENTS), bone_lengths(joints, SMPL22_PARENTS), atol=1e-9)
    assert abs(canonical[..., 1].min()) < 1e-9 and np.abs(canonical[0, 0, [0, 2]]).max() < 1e-9
    recovered = hml.features_to_joints(features)
    assert np.abs(recovered - canonical[:-1]).max() < ROUND_TRIP_TOLERANCE


@settings(max_examples=40, **COMMON)
@given(motions, st.floats(-np.pi, np.pi), st.tuples(*[st.floats(-10, 10)] * 3))
def test_features_ignore_where_the_motion_starts_and_faces(joints, turn, shift):
    moved = np.einsum("ab,tjb->tja", yaw(turn), joints) + np.array(shift)
    # Canonicalisation undoes the move up to float64 rounding (~1e-14); the float32 features round values
    # below ~3 to 2.4e-7, so only a rounding boundary can differ: 1e-5 is forty of those. (Measured: 2.3e-10 at most.)
    assert np.abs(hml.joints_to_features(moved) - hml.joints_to_features(joints)).max() < 1e-5


@settings(max_examples=30, **COMMON)
@given(st.integers(10, 80), st.floats(-np.pi, np.pi), st.floats(-2, 2), st.floats(-2, 2))
def test_a_body_carried_without_turning(frames, facing, vx, vz):
    """Pure translation at constant velocity: from frame 1 on, no yaw velocity and a constant pose in the root
    frame; every root step is the world step seen in the body's smoothed facing. (Frame 0's root rotation is the
    identity, a dataset quirk: the smoothed facing takes the hips with the other sign, which differs from the
    first frame's facing when left and right are not mirror images, as on this skeleton.)"""
    rest = pose(np.zeros((1, 22, 3)))[0]
    step = np.array([vx, 0.0, vz]) / hml.FPS  # metres per frame
    joints = (rest - rest[0]) @ yaw(facing).T + rest[0] + np.arange(frames)[:, None, None] * step  # (T, 22, 3)
    features = hml.joints_to_features(joints)
    part = hml.feature_slices()
    np.testing.assert_allclose(features[1:, part["root_rot_velocity"]], 0.0, atol=1e-6)
    ric = features[1:, part["ric_positions"]]
    np.testing.assert_allclose(ric, np.broadcast_to(ric[0], ric.shape), atol=1e-5)
    speed = np.linalg.norm(features[:, part["root_linear_velocity"]], axis=-1)
    np.testing.assert_allclose(speed, np.hypot(vx, vz) / hml.FPS, atol=1e-6)
    body = joints[0]
    across = (body[hml.LEFT_HIP] - body[hml.RIGHT_HIP]) + (body[hml.RIGHT_SHOULDER] - body[hml.LEFT_SHOULDER])
    smoothed_facing = np.cross([0.0, 1.0, 0.0], across)
    expected = qrot(qbetween(smoothed_facing, np.array([0.0, 0.0, 1.0])), step)  # (3,)
    np.testing.assert_allclose(
        features[:, part["root_linear_velocity"]], np.tile(expected[[0, 2]], (frames - 1, 1)), atol=1e-6
    )

"""The embedded procedural dance: shapes, determinism, rigid bones, variety, feet on the floor, speed."""

import time

import numpy as np
import pytest

from motiondiff.core.errors import UserError
from motiondiff.data.kinematics.skeleton import BODY20_NAMES, BODY20_PARENTS, bone_lengths
from motiondiff.data.procedural.dance import (
    BODY20_REST_OFFSETS,
    dance_skeleton,
    make_procedural_dance,
)

J = {name: i for i, name in enumerate(BODY20_NAMES)}
FEET = [J[n] for n in ("left_ankle", "right_ankle", "left_foot", "right_foot")]


@pytest.fixture(scope="module")
def dance():
    return make_procedural_dance()


def test_shapes_dtypes_and_finite(dance):
    positions, keypoints = dance
    assert positions.shape == (900, 20, 3) and keypoints.shape == (900, 20, 2)
    assert positions.dtype == np.float32 and keypoints.dtype == np.float32
    assert np.isfinite(positions).all() and np.isfinite(keypoints).all()
    np.testing.assert_array_equal(keypoints, positions[..., :2])  # orthographic front view


def test_skeleton_matches_body20():
    skeleton = dance_skeleton()
    assert skeleton.names == BODY20_NAMES and skeleton.parents == BODY20_PARENTS
    assert BODY20_REST_OFFSETS.shape == (20, 3)
    assert BODY20_REST_OFFSETS[0, 1] == pytest.approx(0.95, abs=0.05)


def test_deterministic_per_seed_and_different_across_seeds(dance):
    again = make_procedural_dance(seed=0)
    np.testing.assert_array_equal(dance[0], again[0])
    np.testing.assert_array_equal(dance[1], again[1])
    other = make_procedural_dance(seed=1)
    assert np.abs(other[0] - dance[0]).max() > 0.1


def test_shorter_dance_is_a_prefix_of_the_longer_one(dance):
    short, _ = make_procedural_dance(num_frames=300)
    np.testing.assert_allclose(short, dance[0][:300], atol=1e-6)


def test_bone_lengths_are_constant(dance):
    lengths = bone_lengths(dance[0].astype(np.float64), BODY20_PARENTS)  # (T, bones)
    relative = np.abs(lengths - lengths[0]) / lengths[0]
    assert relative.max() < 1e-5
    rest = np.linalg.norm(BODY20_REST_OFFSETS[1:], axis=-1)  # bones in child order 1..19
    np.testing.assert_allclose(lengths[0], rest, rtol=1e-5)


def test_motion_is_not_static(dance):
    positions = dance[0]
    per_joint_std = positions.std(axis=0).mean(axis=-1)  # (J,)
    assert per_joint_std.min() > 0.02
    assert per_joint_std[[J["left_wrist"], J["right_wrist"]]].min() > 0.1


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_arm_waves_and_turns_show_up(seed):
    positions, keypoints = make_procedural_dance(seed=seed)
    wrists_up = (
        np.maximum(positions[:, J["left_wrist"], 1], positions[:, J["right_wrist"], 1]) > positions[:, J["head"], 1]
    )
    assert wrists_up.mean() > 0.05, "wrists never go above the head"
    shoulder_width = np.abs(keypoints[:, J["left_shoulder"], 0] - keypoints[:, J["right_shoulder"], 0])
    assert shoulder_width.min() < 0.3 * shoulder_width.max(), "the body never turns sideways"
    facing_away = keypoints[:, J["left_shoulder"], 0] < keypoints[:, J["right_shoulder"], 0]
    assert facing_away.any() and (~facing_away).mean() > 0.5, "a turn shows the back, but mostly the front"


def test_feet_stay_on_the_floor(dance):
    positions = dance[0]
    lowest_foot = positions[:, FEET, 1].min(axis=1)  # (T,)
    assert np.abs(lowest_foot).max() < 0.04
    assert (positions[:, :, 1] > -0.01).all(), "nothing goes through the floor"
    head = positions[:, J["head"], 1]
    assert head.min() > 1.3 and (head > positions[:, J["pelvis"], 1]).all()


def test_body_stays_near_the_origin(dance):
    pelvis = dance[0][:, J["pelvis"]]
    assert np.abs(pelvis[:, [0, 2]]).max() < 0.5
    assert 0.85 < pelvis[:, 1].min() and pelvis[:, 1].max() < 1.0
    assert np.ptp(pelvis[:, 1]) > 0.02, "the pelvis bounces"


def test_fast():
    start = time.perf_counter()
    make_procedural_dance(seed=5)
    assert time.perf_counter() - start < 1.0


def test_bad_arguments_raise_user_error():
    with pytest.raises(UserError):
        make_procedural_dance(num_frames=0)
    with pytest.raises(UserError):
        make_procedural_dance(fps=0)
    with pytest.raises(UserError):
        make_procedural_dance(bpm=-1)

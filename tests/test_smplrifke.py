"""The smplrifke features in the course converter's convention: frame 0 absolute, backward steps, cumulative sums."""

import numpy as np
import pytest
import torch

from motiondiff.core.errors import UserError
from motiondiff.data.kinematics.skeleton import SMPL22_NAMES
from motiondiff.data.procedural.actions import make_motion, sample_spec
from motiondiff.data.representations import smplrifke

PART = smplrifke.feature_slices()
ROUND_TRIP = 1e-5  # metres, and feature units for features -> joints -> features


def with_hands(joints: np.ndarray) -> np.ndarray:
    """SMPL22 joints (T, 22, 3) and a hand beyond each wrist along the forearm: (T, 24, 3)."""
    wrists = [SMPL22_NAMES.index(f"{side}_wrist") for side in ("left", "right")]
    elbows = [SMPL22_NAMES.index(f"{side}_elbow") for side in ("left", "right")]
    hands = joints[:, wrists] + 0.4 * (joints[:, wrists] - joints[:, elbows])  # (T, 2, 3)
    return np.concatenate([joints, hands], 1)


def yaw(angle: float) -> np.ndarray:
    """Rotation (3, 3) about +y (y up): +z turns to (sin, 0, cos)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def placed(joints: np.ndarray, angle: float, shift) -> np.ndarray:
    """The whole clip (T, J, 3) turned about the vertical by `angle` and moved by `shift` metres."""
    return np.einsum("ab,tjb->tja", yaw(angle), joints) + np.asarray(shift)


def procedural(seed: int) -> np.ndarray:
    """A random procedural motion (T, 24, 3), y up, starting away from the origin and not facing +z."""
    rng = np.random.default_rng(seed)
    joints = with_hands(make_motion(sample_spec(rng), rng))
    return placed(joints, angle=2.0 + 1.7 * seed, shift=(4.0 - 2.0 * seed, 0.05, -3.0 - seed))


def turning_in_place(angle: float = 360.0) -> np.ndarray:
    """A procedural left turn by `angle` degrees (T, 24, 3) that starts facing 2.5 rad from +z, away from the origin."""
    action = {"action": "turn", "direction": "left", "angle": angle, "speed": "normal", "side": None, "reps": None}
    joints = make_motion({"length": 80, "actions": [{**action, "start": 5, "end": 75}]}, np.random.default_rng(0))
    return placed(with_hands(joints), angle=2.5, shift=(-2.0, 0.0, 5.0))


def hip_heading(joints: np.ndarray) -> np.ndarray:
    """Heading (T,) about the AMASS +z of y-up joints (T, 24, 3), from the hips."""
    zup = np.stack([joints[..., 0], -joints[..., 2], joints[..., 1]], -1)
    return smplrifke.heading_from_hips(torch.from_numpy(zup)).numpy()


def wrapped(angle):
    """Angles wrapped to (-pi, pi]."""
    return np.angle(np.exp(1j * np.asarray(angle)))


@pytest.mark.parametrize("seed", range(6))
def test_round_trips_of_clips_away_from_the_origin_and_turned(seed):
    joints = procedural(seed)
    features = smplrifke.joints_to_features(joints)
    assert features.shape == (len(joints), 205) and features.dtype == np.float32
    # Frame 0 holds where the clip starts and which way it faces, as the course's converter writes them.
    assert abs(wrapped(features[0, PART["heading_velocity"]][0] - hip_heading(joints)[0])) < 1e-6
    distance = np.linalg.norm(joints[0, 0, [0, 2]])  # metres from the origin to the first pelvis
    assert np.linalg.norm(features[0, PART["root_velocity"]]) == pytest.approx(distance, abs=1e-6) and distance > 1
    np.testing.assert_allclose(features[:, 0], joints[:, 0, 1], atol=1e-6)  # absolute pelvis height
    recovered = smplrifke.features_to_joints(features)
    assert np.abs(recovered - joints).max() < ROUND_TRIP  # measured 3e-7 .. 1.3e-6 (10 m from the origin)
    # float64 joints: float32 ones metres away hold the hips' heading only to ~1e-6 rad.
    again = smplrifke.joints_to_features(smplrifke.features_to_joints(features.astype(np.float64)))
    assert np.abs(again - features).max() < ROUND_TRIP  # measured below 1e-14


def test_frame_zero_places_the_first_root_and_heading():
    """Frame 0 storing (3, -2) and 2 rad puts the first pelvis there, facing there (before: the origin, facing -y)."""
    frames, first, heading = 6, np.array([3.0, -2.0]), 2.0
    features = np.zeros((frames, 205), np.float32)
    features[:, 0] = 0.9  # pelvis height
    c, s = np.cos(heading), np.sin(heading)
    features[0, PART["root_velocity"]] = [c * first[0] + s * first[1], -s * first[0] + c * first[1]]  # turned back
    features[1:, PART["root_velocity"]] = [0.0, -0.05]  # then forward (-y in the heading frame), 5 cm a frame
    features[0, PART["heading_velocity"]] = heading
    local = features[:, PART["joint_positions"]].reshape(frames, 23, 3)
    local[:, smplrifke.LEFT_HIP - 1], local[:, smplrifke.RIGHT_HIP - 1] = [0.1, 0.0, -0.1], [-0.1, 0.0, -0.1]
    features[:, PART["rotations"]] = np.tile(smplrifke.IDENTITY_6D, 22)
    joints = smplrifke.features_to_joints(features)  # (T, 24, 3), y up: AMASS (x, y, z) -> (x, z, -y)
    np.testing.assert_allclose(joints[0, 0], [3.0, 0.9, 2.0], atol=1e-6)
    np.testing.assert_allclose(hip_heading(joints.astype(np.float64)), heading, atol=1e-6)
    forward = np.array([np.sin(heading), 0.0, np.cos(heading)])  # heading 2 rad: +z turned toward +x
    np.testing.assert_allclose(joints[1:, 0] - joints[:-1, 0], np.tile(0.05 * forward, (frames - 1, 1)), atol=1e-6)
    np.testing.assert_allclose(smplrifke.joints_to_features(joints), features, atol=1e-6)


def test_a_turn_across_pi_decodes_continuously():
    joints = turning_in_place()
    features = smplrifke.joints_to_features(joints)
    steps = features[1:, PART["heading_velocity"]][:, 0]  # (T-1,)
    assert (np.abs(steps) > np.pi).sum() == 1  # not unwrapped: the step across +-pi is about -2 pi
    assert wrapped(steps).sum() == pytest.approx(2 * np.pi, abs=0.05)  # a whole left turn
    recovered = smplrifke.features_to_joints(features)
    assert np.abs(recovered - joints).max() < ROUND_TRIP
    moves = np.linalg.norm(np.diff(recovered, axis=0), axis=-1).max(-1)  # (T-1,) largest joint step per frame
    assert moves.max() < np.linalg.norm(np.diff(joints, axis=0), axis=-1).max() + ROUND_TRIP
    batched = smplrifke.features_to_joints(torch.from_numpy(features)[None])  # float32 torch: the same
    assert torch.allclose(batched[0], torch.from_numpy(joints).float(), atol=1e-4)


def test_a_given_heading_and_rotations_are_kept():
    """The course takes the heading from the SMPL root orientation: any per-frame angle round-trips."""
    joints = turning_in_place(180.0)
    heading = hip_heading(joints) + 0.3 + 4 * np.pi  # an offset from the hips; whole turns do not matter
    rotations = np.random.default_rng(0).normal(size=(len(joints), 22, 6))
    features = smplrifke.joints_to_features(joints, heading=heading, rotations=rotations)
    assert features[0, PART["heading_velocity"]][0] == pytest.approx(wrapped(heading[0]), abs=1e-6)
    np.testing.assert_allclose(features[:, PART["rotations"]], rotations.reshape(len(joints), -1), atol=1e-6)
    recovered = smplrifke.features_to_joints(features)
    assert np.abs(recovered - joints).max() < ROUND_TRIP
    decoded = np.cumsum(features[:, PART["heading_velocity"]][:, 0].astype(np.float64))  # (T,) the course's headings
    again = smplrifke.joints_to_features(recovered, heading=decoded, rotations=rotations)
    assert np.abs(again - features).max() < ROUND_TRIP
    with pytest.raises(UserError, match="heading must have shape"):
        smplrifke.joints_to_features(joints, heading=heading[:-1])
    with pytest.raises(UserError, match="joints must have shape"):
        smplrifke.joints_to_features(joints[:, :22])

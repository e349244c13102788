"""The HumanML3D 263-feature representation: the dataset's own sample (012314) as a known answer
in both directions, and round trips on a synthetic walk that turns around."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from conftest import shared_path
from motiondiff.core.errors import UserError
from motiondiff.data.kinematics.quaternion import (
    cont6d_to_matrix,
    qbetween,
    qinv,
    qmul,
    qrot,
    quat_to_cont6d,
    quat_to_matrix,
)
from motiondiff.data.kinematics.skeleton import SMPL22_PARENTS, bone_lengths, forward_kinematics
from motiondiff.data.representations import humanml3d_features as hml

SLICES = hml.feature_slices()


def sample(folder: str) -> np.ndarray:
    """The dataset's motion 012314 from ../shared: new_joint_vecs (170, 263) or new_joints (170, 22, 3)."""
    return np.load(shared_path("humanml3d_sample", folder, "012314.npy"))


def part_errors(ours: np.ndarray, theirs: np.ndarray) -> dict:
    """Max abs difference per feature part."""
    return {name: float(np.abs(ours[:, part] - theirs[:, part]).max()) for name, part in SLICES.items()}


# Rest offsets of a made-up body (metres, facing +z, its left on +x), SMPL22 order.
REST = np.array(
    [
        [0, 0.95, 0],
        [0.06, -0.09, 0],
        [-0.06, -0.09, 0],
        [0, 0.11, -0.01],
        [0.01, -0.38, 0],
        [-0.01, -0.38, 0],
        [0, 0.13, 0.01],
        [0, -0.42, -0.03],
        [0, -0.42, -0.03],
        [0, 0.06, 0],
        [0.02, -0.05, 0.13],
        [-0.02, -0.05, 0.13],
        [0, 0.21, -0.02],
        [0.07, 0.12, 0],
        [-0.07, 0.12, 0],
        [0, 0.1, 0.05],
        [0.12, -0.02, 0],
        [-0.12, -0.02, 0],
        [0.26, 0, 0],
        [-0.26, 0, 0],
        [0.26, 0, 0],
        [-0.26, 0, 0],
    ]
)


def synthetic_walk(frames: int = 100, turn_degrees: float = 300.0, seed: int = 0) -> np.ndarray:
    """Joints (T, 22, 3) by FK: a walk along a curve that turns `turn_degrees` (through facing -z),
    with swinging legs and arms, a bobbing root and a little noise on every joint angle."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / hml.FPS  # (T,) seconds
    phase = 2 * np.pi * 0.9 * t  # (T,) one stride per 1.1 s
    yaw = np.radians(turn_degrees) * t / t[-1] + 0.3  # (T,) heading, starting off +z
    euler = rng.normal(0, 0.03, (frames, 22, 3))  # (T, 22, 3) radians, xyz
    euler[:, 0, 1] += yaw
    euler[:, 1, 0] += 0.5 * np.sin(phase)  # hips swing about x
    euler[:, 2, 0] -= 0.5 * np.sin(phase)
    euler[:, 4, 0] += 0.6 * (1 + np.sin(phase + 1))  # knees bend
    euler[:, 5, 0] += 0.6 * (1 - np.sin(phase + 1))
    euler[:, 16, 2] -= 1.2  # arms down, swinging against the legs
    euler[:, 17, 2] += 1.2
    euler[:, 16, 0] -= 0.4 * np.sin(phase)
    euler[:, 17, 0] += 0.4 * np.sin(phase)
    rotations = Rotation.from_euler("xyz", euler.reshape(-1, 3)).as_matrix().reshape(frames, 22, 3, 3)
    heading = np.stack([np.sin(yaw), np.zeros(frames), np.cos(yaw)], axis=-1)  # (T, 3)
    root = np.cumsum(heading * 1.1 / hml.FPS, axis=0) + [0.4, 0.0, -0.7]  # (T, 3): 1.1 m/s
    root[:, 1] = 0.95 + 0.02 * np.sin(2 * phase)
    translations = np.broadcast_to(REST, (frames, 22, 3)).copy()  # (T, 22, 3)
    translations[:, 0] = root
    return forward_kinematics(SMPL22_PARENTS, rotations, translations)


# --- the dataset's sample as a known answer -------------------------------------------------------


def test_feature_layout():
    widths = {name: part.stop - part.start for name, part in SLICES.items()}
    assert widths == {
        "root_rot_velocity": 1,
        "root_linear_velocity": 2,
        "root_height": 1,
        "ric_positions": 63,
        "rotations": 126,
        "local_velocities": 66,
        "foot_contact": 4,
    }
    assert list(SLICES.values())[-1].stop == hml.FEATURES == 263
    assert hml.feature_slices(10)["foot_contact"].stop == 12 * 10 - 1


def test_features_to_joints_reproduces_the_dataset_joints():
    features, joints = sample("new_joint_vecs"), sample("new_joints")
    recovered = hml.features_to_joints(features)
    assert isinstance(recovered, np.ndarray) and recovered.dtype == np.float32 and recovered.shape == (170, 22, 3)
    # The dataset stored its float32 recovery of the same features: measured 2.4e-7.
    assert np.abs(recovered - joints).max() < 1e-5
    for frames in (1, 2):  # the shortest motions (the app offers 1 frame): their first frames, as in the whole
        np.testing.assert_allclose(hml.features_to_joints(features[:frames]), recovered[:frames], atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_features_to_joints_torch_batched_and_differentiable(dtype):
    features, joints = sample("new_joint_vecs"), sample("new_joints")
    batch = torch.from_numpy(np.stack([features, features[::-1].copy()])).to(dtype).requires_grad_(True)  # (2, T, 263)
    recovered = hml.features_to_joints(batch)
    assert isinstance(recovered, torch.Tensor) and recovered.shape == (2, 170, 22, 3) and recovered.dtype == dtype
    assert (recovered[0].detach().numpy() - joints).__abs__().max() < 1e-5  # measured 0 (float32), 2.4e-7 (float64)
    single = hml.features_to_joints(batch[1].detach())
    assert torch.allclose(recovered[1].detach(), single, atol=1e-6)  # batching changes nothing
    recovered.square().sum().backward()
    assert torch.isfinite(batch.grad).all() and batch.grad.abs().sum() > 0


def test_joints_to_features_reproduces_the_dataset_features():
    """The dataset's features came from its 171 original frames; new_joints holds 170 frames recovered
    from the features, so joints_to_features(new_joints) gives 169 frames, compared with the first 169.

    Frames 0..88 depend only on joints the sample holds: they match to float error. From frame 89
    on, the Gaussian (sigma 20 frames, truncated at 4 sigma = 80 frames) that smooths the facing
    direction would also see the dataset's last frame, 170, which new_joints lacks; so the root yaw
    differs a little there, and with it everything measured in the root frame.
    """
    features, joints = sample("new_joint_vecs"), sample("new_joints")
    ours = hml.joints_to_features(joints)
    assert ours.shape == (169, 263) and ours.dtype == np.float32
    near = part_errors(ours[:89], features[:89])
    # Measured: yaw 1.3e-7, root velocity 3.4e-8, height 0, positions 2.1e-7, velocities 3.4e-7: float32 rounding
    # of values below ~2 plus the 2.4e-7 recovery error of the float32 joints.
    for name in ["root_rot_velocity", "root_linear_velocity", "root_height", "ric_positions", "local_velocities"]:
        assert near[name] < 1e-6, (name, near[name])
    # Measured 7.7e-6: IK turns bone directions into rotations, and the shortest bone (spine2->spine3, 5.7 cm)
    # carries a 2.4e-7 position error, i.e. ~8e-6 of direction.
    assert near["rotations"] < 3e-5
    assert near["foot_contact"] == 0  # thresholds on the same velocities: no contact flips
    tail = part_errors(ours[89:], features[89:169])
    # Measured: yaw 3.0e-4, root velocity 1.4e-4, height 0, positions 6.8e-3, rotations 1.3e-2, velocities 4.1e-4,
    # contacts exact. The bounds are twice those: a yaw change of ~1e-3 rad moves points 1 m from the root by 1e-3
    # and turns the (root-relative) 6D columns by as much.
    bounds = {
        "root_rot_velocity": 6e-4,
        "root_linear_velocity": 3e-4,
        "root_height": 1e-6,
        "ric_positions": 1.5e-2,
        "rotations": 3e-2,
        "local_velocities": 1e-3,
        "foot_contact": 0,
    }
    for name, bound in bounds.items():
        assert tail[name] <= bound, (name, tail[name])


def test_joints_to_features_reproduces_every_dataset_frame_from_the_full_motion():
    """The missing last frame follows from the features themselves (frame 169's local velocities, seen in
    its root frame); with all 171 frames every one of the 170 feature frames matches to float error."""
    features = sample("new_joint_vecs").astype(np.float64)
    recovered = hml.features_to_joints(features)  # (170, 22, 3)
    half_angle = features[:, 0].cumsum()[-2]  # root yaw of frame 169 (half-angle)
    root_169 = np.array([np.cos(half_angle), 0.0, np.sin(half_angle), 0.0])
    step = qrot(qinv(root_169), features[-1, SLICES["local_velocities"]].reshape(22, 3))  # (22, 3)
    full = np.concatenate([recovered, recovered[-1:] + step])  # (171, 22, 3)
    errors = part_errors(hml.joints_to_features(full), features)
    # Measured: yaw 1.3e-7, root velocity 1.5e-8, height 0, positions 1.3e-7, rotations 2.1e-6, velocities 3.1e-7.
    for name in ["root_rot_velocity", "root_linear_velocity", "root_height", "ric_positions", "local_velocities"]:
        assert errors[name] < 1e-6, (name, errors[name])
    assert errors["rotations"] < 1e-5
    assert errors["foot_contact"] == 0


def test_the_sample_is_on_the_reference_skeleton():
    joints = sample("new_joints").astype(np.float64)
    lengths = bone_lengths(joints, SMPL22_PARENTS)  # (170, 21)
    assert np.abs(lengths - hml.REFERENCE_BONE_LENGTHS).max() < 5e-6  # constants rounded to 1e-6
    assert np.abs(hml.retarget(joints, hml.REFERENCE_OFFSETS) - joints).max() < 2e-5


def test_dataset_statistics_normalise_the_sample_sensibly():
    mean = np.load(shared_path("humanml3d_sample", "Mean.npy"))
    std = np.load(shared_path("humanml3d_sample", "Std.npy"))
    assert mean.shape == std.shape == (hml.FEATURES,) and (std > 0).all()
    z = (sample("new_joint_vecs") - mean) / std
    assert np.isfinite(z).all()
    # Measured: mean |z| 0.97, 99.3% of the values within 5, largest 24 (a fast hand velocity).
    assert np.abs(z).mean() < 1.5 and (np.abs(z) < 5).mean() > 0.98 and np.abs(z).max() < 50


# --- round trips and invariances on a synthetic walk ------------------------------------------------


def test_round_trip_on_a_turning_walk():
    joints = synthetic_walk()
    features = hml.joints_to_features(joints)
    assert features.shape == (99, 263) and np.isfinite(features).all()
    canonical = hml.canonicalize_joints(joints)
    recovered = hml.features_to_joints(features)
    assert np.abs(recovered - canonical[:-1]).max() < 1e-4  # measured ~1e-7 (float32 features)
    assert np.isclose(canonical[..., 1].min(), 0.0) and np.allclose(canonical[0, 0, [0, 2]], 0.0)
    assert np.allclose(bone_lengths(canonical, SMPL22_PARENTS), bone_lengths(joints, SMPL22_PARENTS))
    # The root rotation turns the facing onto +z, so a left (counter-clockwise) turn has negative yaw velocity;
    # the smoothed facing trails the 297 degrees the walk turns over the first 99 frames: measured 279.
    assert 260 < -np.degrees(2 * features[:, 0].sum()) < 300


def test_a_turn_through_facing_minus_z_keeps_its_sign():
    """The dataset's yaw velocity (arcsin of the raw quaternion's y) flips sign on the frame the facing
    crosses -z; ours does not, so the walk recovers, where the dataset's formula drifts."""
    joints = synthetic_walk()
    root_quat = hml.root_rotations(hml.canonicalize_joints(joints))  # (T, 4)
    steps = qmul(root_quat[1:], qinv(root_quat[:-1]))  # (T-1, 4)
    assert (steps[:, 0] < 0).sum() >= 1  # the walk crosses -z: the case is exercised
    features = hml.joints_to_features(joints)
    dataset_style = features.copy()
    dataset_style[:, 0] = np.arcsin(steps[:, 2])
    canonical = hml.canonicalize_joints(joints)[:-1]
    assert np.abs(hml.features_to_joints(dataset_style) - canonical).max() > 1e-2
    assert np.abs(hml.features_to_joints(features) - canonical).max() < 1e-4


def test_features_ignore_where_the_motion_starts_and_faces():
    joints = synthetic_walk(frames=60)
    turned = qrot(qbetween(np.array([0.0, 0.0, 1.0]), np.array([0.6, 0.0, -0.8])), joints) + [3.0, 0.25, -2.0]
    assert np.abs(hml.joints_to_features(turned) - hml.joints_to_features(joints)).max() < 1e-5


def test_retarget_sets_the_reference_bones_and_scales_the_path():
    joints = synthetic_walk(frames=40)
    moved = hml.retarget(joints, hml.REFERENCE_OFFSETS)
    assert np.allclose(bone_lengths(moved, SMPL22_PARENTS), hml.REFERENCE_BONE_LENGTHS, atol=1e-9)
    leg = lambda j: sum(np.linalg.norm(j[0, c] - j[0, SMPL22_PARENTS[c]]) for c in hml.LEG_JOINTS)  # noqa: E731
    assert np.allclose(moved[:, 0], joints[:, 0] * leg(moved) / leg(joints))
    features = hml.joints_to_features(joints, target_offsets=hml.REFERENCE_OFFSETS)
    expected = hml.canonicalize_joints(joints, hml.REFERENCE_OFFSETS)[:-1]
    assert np.abs(hml.features_to_joints(features) - expected).max() < 1e-4


@pytest.mark.parametrize(
    "joints",
    [np.zeros((10, 21, 3)), np.zeros((10, 22)), np.zeros((1, 22, 3)), np.full((10, 22, 3), np.nan)],
    ids=["21-joints", "no-xyz", "one-frame", "nan"],
)
def test_bad_joints_are_refused(joints):
    with pytest.raises(UserError, match="HumanML3D features need"):
        hml.joints_to_features(joints)


def test_bad_features_are_refused():
    with pytest.raises(UserError, match="263"):
        hml.features_to_joints(np.zeros((10, 251)))
    with pytest.raises(UserError, match="263"):
        hml.features_to_joints(torch.zeros(263))


# --- rotation helpers ---------------------------------------------------------------------------------


def test_quaternion_helpers_agree_with_scipy_and_each_other():
    rng = np.random.default_rng(1)
    q = rng.normal(size=(50, 4))
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    matrices = Rotation.from_quat(q[:, [1, 2, 3, 0]]).as_matrix()  # scipy is (x, y, z, w)
    assert np.allclose(quat_to_matrix(q), matrices)
    v = rng.normal(size=(50, 3))
    assert np.allclose(qrot(q, v), np.einsum("nab,nb->na", matrices, v))
    assert np.allclose(quat_to_matrix(qmul(q, q[::-1])), matrices @ matrices[::-1])
    assert np.allclose(cont6d_to_matrix(quat_to_cont6d(q)), matrices)
    assert torch.allclose(quat_to_matrix(torch.from_numpy(q)), torch.from_numpy(matrices))
    u, w = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    turned = qrot(qbetween(u, w), u)
    unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)  # noqa: E731
    assert np.allclose(unit(turned), unit(w))
    opposite = qbetween(np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]), np.array([[0.0, 0.0, -2.0], [-1.0, 0.0, 0.0]]))
    assert np.allclose(qrot(opposite, np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])), [[0, 0, -1], [-1, 0, 0]])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_features_to_joints_on_cuda():
    features = torch.from_numpy(hml.joints_to_features(synthetic_walk(frames=30)))  # (29, 263)
    on_gpu = hml.features_to_joints(features.cuda())
    assert on_gpu.device.type == "cuda"
    assert torch.allclose(on_gpu.cpu(), hml.features_to_joints(features), atol=1e-5)

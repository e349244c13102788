"""KIT-ML: the 21-joint skeleton, its 251 features in both directions (millimetres, 12.5 fps), the
representation, the layout and the dataset config."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from conftest import compose_config
from motiondiff.core.errors import UserError
from motiondiff.data import text_motion
from motiondiff.data.formats.humanml3d_layout import parse_humanml3d_line
from motiondiff.data.formats.kit_layout import KIT_LAYOUT
from motiondiff.data.info import TextMotionData
from motiondiff.data.kinematics.quaternion import qinv, qrot
from motiondiff.data.kinematics.skeleton import KIT21_NAMES, KIT21_PARENTS, bone_lengths, forward_kinematics
from motiondiff.data.procedural.actions import make_motion
from motiondiff.data.representations import humanml3d_features as hml
from motiondiff.data.representations.feature_skeletons import KIT_SKELETON, T2M_SKELETON
from motiondiff.data.representations.registry import get_representation
from test_text_motion_data import FakeEncoder, line, motion

KIT = KIT_SKELETON
SLICES = hml.feature_slices(21)

# The MMM reference body's rest offsets (millimetres, y up, facing +z), KIT-ML order. Mirrored like the
# dataset: the "L" joints (LS 5, LH 11) sit at -x, the body's right when it faces +z.
REST = np.array(
    [
        [0, 530, 0],
        [0, 80, 0],
        [0, 120, 0],
        [0, 44, 0],
        [0, 30, 0],
        [-110, 0, 0],
        [0, -188, 0],
        [0, -145, 0],
        [110, 0, 0],
        [0, -188, 0],
        [0, -145, 0],
        [-52, 0, 0],
        [0, -245, 0],
        [0, -246, 0],
        [0.6, -18.7, 23.8],
        [-8.8, -14.4, 53.7],
        [52, 0, 0],
        [0, -245, 0],
        [0, -246, 0],
        [0.6, -18.7, 23.8],
        [8.8, -14.3922, 53.7],
    ]
)  # (21, 3)


def kit_walk(frames: int = 80, turn_degrees: float = 300.0, seed: int = 0) -> np.ndarray:
    """Joints (T, 21, 3) in mm by FK on the MMM body: a 1.1 m/s walk at 12.5 fps along a curve that turns
    `turn_degrees` (through facing -z), legs and arms swinging, the root bobbing, a little noise on every angle."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / KIT.fps  # (T,) seconds
    phase = 2 * np.pi * 0.9 * t  # (T,) one stride per 1.1 s
    yaw = np.radians(turn_degrees) * t / t[-1] + 0.3  # (T,) heading, starting off +z
    euler = rng.normal(0, 0.03, (frames, 21, 3))  # (T, 21, 3) radians, xyz
    euler[:, 0, 1] += yaw
    euler[:, 11, 0] += 0.5 * np.sin(phase)  # hips swing about x (11: the right hip in KIT-ML space)
    euler[:, 16, 0] -= 0.5 * np.sin(phase)
    euler[:, 12, 0] += 0.6 * (1 + np.sin(phase + 1))  # knees bend
    euler[:, 17, 0] += 0.6 * (1 - np.sin(phase + 1))
    euler[:, 5, 0] -= 0.4 * np.sin(phase)  # arms swing against the legs
    euler[:, 8, 0] += 0.4 * np.sin(phase)
    rotations = Rotation.from_euler("xyz", euler.reshape(-1, 3)).as_matrix().reshape(frames, 21, 3, 3)
    heading = np.stack([np.sin(yaw), np.zeros(frames), np.cos(yaw)], axis=-1)  # (T, 3)
    root = np.cumsum(heading * 1100.0 / KIT.fps, axis=0) + [400.0, 0.0, -700.0]  # (T, 3): 88 mm per frame
    root[:, 1] = 530.0 + 20.0 * np.sin(2 * phase)
    translations = np.broadcast_to(REST, (frames, 21, 3)).copy()  # (T, 21, 3)
    translations[:, 0] = root
    return forward_kinematics(KIT21_PARENTS, rotations, translations)


# SMPL22 joints standing for each KIT-ML joint, mirrored like KIT-ML (its "L" joints are the body's right);
# a pair averages two joints (KIT's ball of the foot, LMrot/RMrot, halfway from the ankle to SMPL's foot joint).
SMPL_FOR_KIT = [0, 3, 9, 12, 15, 17, 19, 21, 16, 18, 20, 2, 5, 8, (8, 11), 11, 1, 4, 7, (7, 10), 10]


def procedural_on_kit() -> np.ndarray:
    """A procedural walk, a 180-degree left turn and a walk back (SMPL22, metres, 20 fps) as KIT-ML joints
    (T, 21, 3) in millimetres, resampled to 12.5 fps; the bone lengths are SMPL's, not KIT-ML's."""
    actions = [
        {"action": "walk", "direction": "forward", "speed": "normal", "start": 0, "end": 60},
        {"action": "turn", "direction": "left", "angle": 180, "speed": "normal", "start": 60, "end": 100},
        {"action": "walk", "direction": "forward", "speed": "normal", "start": 100, "end": 160},
    ]
    for action in actions:
        action.update({key: action.get(key) for key in ("direction", "side", "reps", "angle")})
    smpl = make_motion({"length": 160, "actions": actions}, np.random.default_rng(3)) * 1000.0  # (160, 22, 3) mm
    kit = np.stack([smpl[:, list(np.atleast_1d(j))].mean(1) for j in SMPL_FOR_KIT], 1)  # (160, 21, 3)
    times = np.arange(0, (len(kit) - 1) / 20.0, 1 / KIT.fps)  # (T,) seconds at 12.5 fps
    flat = kit.reshape(len(kit), -1)  # (160, 63)
    resampled = np.stack([np.interp(times, np.arange(len(kit)) / 20.0, column) for column in flat.T], -1)
    return resampled.reshape(len(times), 21, 3)


def append_last_frame(joints: np.ndarray, features: np.ndarray) -> np.ndarray:
    """The frame after the recovered ones (T+1, J, 3): the last feature frame's local velocities, in its root frame."""
    half_angle = features[:, 0].astype(np.float64).cumsum()[-2]  # root yaw (half-angle) of the last frame
    root = np.array([np.cos(half_angle), 0.0, np.sin(half_angle), 0.0])
    step = qrot(qinv(root), features[-1, SLICES["local_velocities"]].astype(np.float64).reshape(21, 3))  # (21, 3)
    return np.concatenate([joints, joints[-1:] + step])


def part_errors(ours: np.ndarray, theirs: np.ndarray) -> dict:
    """Max abs difference per feature part."""
    return {name: float(np.abs(ours[:, part] - theirs[:, part]).max()) for name, part in SLICES.items()}


# Round-trip tolerance in millimetres: float32 features of positions up to ~3000 mm round to ~1e-4 mm
# (measured 1.4e-4); 1e-3 mm is 1e-6 m, a hundred times tighter than the HumanML3D tests' 1e-4 m.
MM_TOLERANCE = 1e-3


# --- the skeleton and the feature layout -----------------------------------------------------------


def test_kit_skeleton_and_feature_layout():
    widths = {name: part.stop - part.start for name, part in SLICES.items()}
    assert widths == {
        "root_rot_velocity": 1,
        "root_linear_velocity": 2,
        "root_height": 1,
        "ric_positions": 60,
        "rotations": 120,
        "local_velocities": 63,
        "foot_contact": 4,
    }
    assert SLICES["foot_contact"] == slice(247, 251) and KIT.features == 251 and KIT.num_joints == 21
    assert (KIT.joint_names, KIT.parents, KIT.fps, KIT.units) == (KIT21_NAMES, KIT21_PARENTS, 12.5, "millimetres")
    names = [KIT21_NAMES[j] for j in KIT.face_joints + KIT.foot_joints + KIT.leg_joints]
    assert names == ["LH", "RH", "LS", "RS", "RMrot", "RF", "LMrot", "LF", "RK", "RA"]  # the dataset's labels
    # The reference lengths are the MMM body's: the rest offsets above, to the 1e-5 mm they are given to.
    assert np.abs(np.linalg.norm(REST[1:], axis=-1) - KIT.reference_bone_lengths).max() < 1e-5
    assert np.allclose(np.linalg.norm(KIT.reference_offsets, axis=-1)[1:], KIT.reference_bone_lengths)
    assert (T2M_SKELETON.features, hml.FEATURES, hml.NUM_JOINTS, hml.FPS) == (263, 263, 22, 20)


def test_the_body_faces_plus_z_with_the_l_joints_on_its_right():
    """KIT-ML is mirrored: canonicalised, LS (5) and LH (11) lie at -x, the toes ahead of the ankles (+z)."""
    pose = forward_kinematics(KIT21_PARENTS, np.broadcast_to(np.eye(3), (2, 21, 3, 3)), np.stack([REST, REST]))
    turned = qrot(np.array([np.cos(1.1), 0.0, np.sin(1.1), 0.0]), pose) + [300.0, 40.0, -500.0]  # faces elsewhere
    canonical = hml.canonicalize_joints(turned, skeleton=KIT)  # (2, 21, 3)
    assert np.allclose(canonical, pose - [0.0, pose[..., 1].min(), 0.0], atol=1e-9)  # back to the rest pose
    assert (canonical[0, [5, 11], 0] < 0).all() and (canonical[0, [8, 16], 0] > 0).all()
    assert (canonical[0, [15, 20], 2] > canonical[0, [13, 18], 2]).all()
    features = hml.joints_to_features(turned, skeleton=KIT)  # (1, 251): standing still
    assert np.allclose(features[:, SLICES["foot_contact"]], 1.0) and np.allclose(features[:, :3], 0.0, atol=1e-6)


# --- both directions on moving, turning motions -----------------------------------------------------


def test_round_trips_on_a_turning_kit_walk():
    joints = kit_walk()
    features = hml.joints_to_features(joints, skeleton=KIT)
    assert features.shape == (79, 251) and features.dtype == np.float32 and np.isfinite(features).all()
    canonical = hml.canonicalize_joints(joints, skeleton=KIT)
    recovered = hml.features_to_joints(features, KIT)  # (79, 21, 3) mm
    assert np.abs(recovered - canonical[:-1]).max() < MM_TOLERANCE  # joints -> features -> joints
    assert np.abs(bone_lengths(recovered.astype(np.float64), KIT21_PARENTS) - KIT.reference_bone_lengths).max() < 1e-3
    # features -> joints -> features, with the frame after the recovered ones restored from the last velocities.
    errors = part_errors(
        hml.joints_to_features(append_last_frame(recovered.astype(np.float64), features), skeleton=KIT), features
    )
    # Measured: yaw 3.7e-9, root velocity 2.2e-4 mm, positions 2.2e-4 mm, rotations 3.0e-5, velocities 2.4e-4 mm.
    assert errors["root_rot_velocity"] < 1e-6 and errors["root_height"] < MM_TOLERANCE
    for name in ["root_linear_velocity", "ric_positions", "local_velocities"]:
        assert errors[name] < MM_TOLERANCE, (name, errors[name])
    assert errors["rotations"] < 1e-4 and errors["foot_contact"] == 0
    # Units: the root moves 88 mm per frame; the smoothed facing trails the 300-degree turn (measured 278).
    speed = np.linalg.norm(features[:, SLICES["root_linear_velocity"]], axis=-1)
    assert np.allclose(speed, 1100.0 / 12.5, atol=1e-3)
    assert 260 < -np.degrees(2 * features[:, 0].sum()) < 300
    # The dataset's contact threshold (0.05 in squared mm) finds no contact while walking, as in KIT-ML.
    assert features[:, SLICES["foot_contact"]].sum() == 0


def test_a_procedural_motion_retargeted_onto_the_kit_body():
    """SMPL proportions in, KIT-ML's out: the reference offsets set the MMM bone lengths and scale the path."""
    joints = procedural_on_kit()  # (100, 21, 3)
    features = hml.joints_to_features(joints, target_offsets=KIT.reference_offsets, skeleton=KIT)
    expected = hml.canonicalize_joints(joints, KIT.reference_offsets, KIT)
    recovered = hml.features_to_joints(features, KIT)
    assert np.abs(recovered - expected[:-1]).max() < MM_TOLERANCE  # measured 7.3e-5
    lengths = bone_lengths(recovered.astype(np.float64), KIT21_PARENTS)  # (99, 20)
    assert np.abs(lengths - KIT.reference_bone_lengths).max() < 1e-3
    leg = lambda j: sum(np.linalg.norm(j[0, c] - j[0, KIT21_PARENTS[c]]) for c in KIT.leg_joints)  # noqa: E731
    moved = hml.retarget(joints, KIT.reference_offsets, KIT)
    assert np.allclose(moved[:, 0], joints[:, 0] * 491.0 / leg(joints))
    assert 170 < -np.degrees(2 * features[:, 0].sum()) < 190  # the 180-degree left turn (measured 179.4)
    errors = part_errors(
        hml.joints_to_features(append_last_frame(recovered.astype(np.float64), features), skeleton=KIT), features
    )
    assert max(errors.values()) < MM_TOLERANCE, errors


def test_features_to_joints_picks_the_skeleton_by_width_and_batches():
    kit = hml.joints_to_features(kit_walk(frames=30), skeleton=KIT)  # (29, 251)
    batch = torch.from_numpy(np.stack([kit, kit[::-1].copy()]))  # (2, 29, 251)
    joints = hml.features_to_joints(batch, None)
    assert isinstance(joints, torch.Tensor) and joints.shape == (2, 29, 21, 3)
    assert torch.allclose(joints[0], torch.from_numpy(hml.features_to_joints(kit, KIT)), atol=1e-3)
    assert hml.features_to_joints(np.zeros((5, 263), np.float32), None).shape == (5, 22, 3)
    assert hml.skeleton_of_width(251) is KIT and hml.skeleton_of_width(263) is T2M_SKELETON
    with pytest.raises(UserError, match="263 .HumanML3D., 251 .KIT-ML."):
        hml.features_to_joints(np.zeros((5, 205)), None)


def test_bad_kit_input_is_refused():
    with pytest.raises(UserError, match="KIT-ML features need joint positions of shape .frames >= 2, 21, 3."):
        hml.joints_to_features(np.zeros((10, 22, 3)), skeleton=KIT)
    with pytest.raises(UserError, match="KIT-ML features must have shape .*251"):
        hml.features_to_joints(np.zeros((10, 263)), KIT)
    with pytest.raises(UserError, match="HumanML3D features need"):  # the default stays HumanML3D
        hml.joints_to_features(kit_walk(frames=5))


# --- the representation, the layout and the config --------------------------------------------------


def test_kit_representation_gives_millimetres_and_positions_in_metres():
    kit = get_representation("kit")
    assert (kit.features, kit.num_joints, kit.fps, kit.metres_per_unit) == (251, 21, 12.5, 0.001)
    assert (kit.joint_names, kit.parents) == (KIT21_NAMES, KIT21_PARENTS)
    features = torch.from_numpy(hml.joints_to_features(kit_walk(frames=20), skeleton=KIT))  # (19, 251)
    millimetres = kit.to_joints(features)
    assert millimetres.shape == (19, 21, 3) and 400 < float(millimetres[:, 0, 1].mean()) < 700
    info = TextMotionData(
        features=251,
        num_joints=21,
        dims=3,
        fps=12.5,
        joint_names=KIT21_NAMES,
        parents=KIT21_PARENTS,
        feature_abs_max=1.0,
        source="test",
        representation="kit",
        layout="kit",
        max_frames=196,
        min_frames=24,
        text_dim=8,
        text_encoder="fake",
        text_tokens=1,
        dataset_id="test",
        num_train=1,
        num_val=1,
        length_distribution=[19],
    )
    assert torch.allclose(info.to_positions(features), millimetres / 1000.0)  # rendering and metrics work in metres
    assert get_representation("humanml3d").metres_per_unit == 1.0


def test_kit_layout_and_config(tmp_path):
    assert (KIT_LAYOUT.name, KIT_LAYOUT.representation, KIT_LAYOUT.features, KIT_LAYOUT.fps) == (
        "kit",
        "kit",
        251,
        12.5,
    )
    assert KIT_LAYOUT.parse_line is parse_humanml3d_line and KIT_LAYOUT.required_files == ("Mean.npy", "Std.npy")
    cfg = compose_config("train", tmp_path, ["dataset=kit"]).dataset
    assert (cfg.layout, cfg.min_frames, cfg.max_frames, cfg.root) == ("kit", 24, 196, None)


def write_kit(root):
    """A small KIT-ML folder: 251 features, word/POS captions with 0.0#0.0 times, splits and statistics."""
    for folder in ("new_joint_vecs", "texts"):
        (root / folder).mkdir(parents=True)
    motions = {
        "00001": (40, ["a person walks forward", "someone walks"]),
        "M00001": (40, ["a person walks forward"]),
        "00002": (30, ["a person waves"]),
        "00003": (20, ["too short for kit"]),  # under min_frames=24
        "00004": (60, ["a person jumps"]),
        "00005": (25, ["a person bows"]),
    }
    for index, (motion_id, (frames, captions)) in enumerate(motions.items()):
        np.save(root / "new_joint_vecs" / f"{motion_id}.npy", motion(frames, features=251, seed=index))
        (root / "texts" / f"{motion_id}.txt").write_text("\n".join(line(caption) for caption in captions) + "\n")
    for split, ids in {"train": ["00001", "M00001", "00002", "00003"], "val": ["00004"], "test": ["00005"]}.items():
        (root / f"{split}.txt").write_text("\n".join(ids) + "\n")
    np.save(root / "Mean.npy", np.full(251, 0.5, np.float32))
    np.save(root / "Std.npy", np.full(251, 2.0, np.float32))
    return root


def test_a_kit_folder_loads_through_the_data_module(tmp_path):
    if "kit" not in text_motion.LAYOUTS:
        pytest.skip("the kit layout is not registered in motiondiff.data.text_motion.LAYOUTS yet")
    root = write_kit(tmp_path / "KIT-ML")
    module = text_motion.TextMotionDataModule(
        str(root), FakeEncoder(), layout="kit", min_frames=24, batch_size=2, cache_dir=str(tmp_path / "cache")
    )
    module.setup("fit")
    assert [clip.name for clip in module.train_set.clips] == ["00001", "M00001", "00002"]  # 00003 too short
    assert module.train_set.clips[0].captions[0].text == "a person walks forward"
    np.testing.assert_allclose(module.normalizer.mean.numpy(), 0.5)
    np.testing.assert_allclose(module.normalizer.std.numpy(), 2.0)
    info = module.info
    assert (info.representation, info.layout, info.features, info.num_joints, info.fps) == ("kit", "kit", 251, 21, 12.5)
    assert (info.min_frames, info.joint_names) == (24, KIT21_NAMES)
    batch = next(iter(module.val_dataloader()))
    assert batch["motion"].shape == (1, 60, 251) and batch["caption"] == ["a person jumps"]
    assert module.test_items()[0]["name"] == "00005"

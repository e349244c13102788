"""The 3D single dance: BVH -> local_rotations features -> forward kinematics -> BVH, on every shared clip."""

import json

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from conftest import TINY_NETWORK, compose_config, shared_path
from motiondiff.core.errors import UserError
from motiondiff.data.dance3d import Dance3DDataModule, kept_joints, writable_channels
from motiondiff.data.formats.bvh import load_bvh, load_bvh_hierarchy, resample
from motiondiff.data.info import describe_data
from motiondiff.data.representations.local_rotations import (
    RotationLayout,
    decode,
    encode,
    facing_positions,
    opening_of,
    yaw_matrix,
)
from motiondiff.generation import run as generate
from motiondiff.metrics.skeleton import foot_skating
from motiondiff.runs import train
from test_bvh_bounds import write_bvh

CLIPS = ("Gangnam-Style", "Crab-dance-long", "Walk-In-Circle", "proud", "normal")


def features_of(clip, with_positions=True, up="y"):
    """(features, offsets, layout, opening) of a parsed clip with every joint kept."""
    rotations, root = clip.local_rotations, clip.local_translations[:, 0]
    layout = RotationLayout(tuple(range(clip.skeleton.num_joints)), with_positions)
    offsets = clip.local_translations[0]
    features = encode(rotations, root, offsets, clip.skeleton.parents, layout, up)
    return features, offsets, layout, opening_of(rotations, root, up)


@pytest.mark.parametrize("name", CLIPS)
def test_features_forward_kinematics_features_round_trip_on_every_shared_clip(name):
    clip = resample(load_bvh(shared_path("bvh", f"{name}.bvh")), 30)
    features, offsets, layout, opening = features_of(clip)
    parents, fixed = clip.skeleton.parents, clip.local_rotations[0]
    rotations, root, positions = decode(features, offsets, parents, fixed, layout, opening)
    assert np.abs(encode(rotations, root, offsets, parents, layout) - features).max() < 1e-5
    scale = np.ptp(clip.positions())
    assert np.abs(positions - clip.positions()).max() < 1e-5 * scale  # the clip itself, where it stood
    tensor = decode(torch.from_numpy(features), offsets, parents, fixed, layout, opening)[2]
    assert np.abs(tensor.numpy() - positions).max() < 1e-9 * scale  # torch and numpy agree


def test_a_z_up_file_round_trips_and_its_heading_is_about_z():
    clip = resample(load_bvh(shared_path("bvh", "Walk-In-Circle.bvh")), 30)
    y_to_z = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # the same motion with z up
    rotations = clip.local_rotations.copy()
    rotations[:, 0] = y_to_z @ rotations[:, 0]
    root = clip.local_translations[:, 0] @ y_to_z.T
    layout = RotationLayout(tuple(range(clip.skeleton.num_joints)), False)
    offsets = clip.local_translations[0]
    z_up = encode(rotations, root, offsets, clip.skeleton.parents, layout, "z")
    y_up = encode(clip.local_rotations, clip.local_translations[:, 0], offsets, clip.skeleton.parents, layout, "y")
    assert np.abs(z_up - y_up).max() < 1e-9  # the features do not depend on the file's up axis


def test_turning_and_moving_the_source_leaves_the_features_unchanged():
    clip = resample(load_bvh(shared_path("bvh", "Gangnam-Style.bvh")), 30)
    features, offsets, layout, _ = features_of(clip)
    turn = yaw_matrix(np.array(1.1))
    rotations = clip.local_rotations.copy()
    rotations[:, 0] = turn @ rotations[:, 0]
    root = clip.local_translations[:, 0] @ turn.T + np.array([300.0, 0.0, -50.0])
    moved = encode(rotations, root, offsets, clip.skeleton.parents, layout)
    assert np.abs(moved - features).max() < 1e-6 * np.abs(features).max()


def test_facing_positions_are_the_joints_relative_to_the_root_ground_point():
    clip = resample(load_bvh(shared_path("bvh", "Walk-In-Circle.bvh")), 30)
    features, offsets, layout, _ = features_of(clip, with_positions=True)
    local = facing_positions(features, offsets, clip.skeleton.parents, clip.local_rotations[0], layout)
    stored = features[:, layout.positions].reshape(len(features), -1, 3)
    assert np.abs(local - stored).max() < 1e-6 * np.ptp(stored)


def test_fingers_are_dropped_for_human_maps_and_every_joint_kept_otherwise():
    gangnam = load_bvh(shared_path("bvh", "Gangnam-Style.bvh")).skeleton
    kept = [gangnam.names[j] for j in kept_joints(gangnam)]
    assert "LeftHand" in kept and "RightHand" in kept and not any("Index" in name or "Thumb" in name for name in kept)
    assert len(kept_joints(gangnam, "all")) == gangnam.num_joints
    crab = load_bvh(shared_path("bvh", "Crab-dance-long.bvh")).skeleton
    assert kept_joints(crab) == tuple(range(crab.num_joints))
    with pytest.raises(UserError, match="dataset.joints"):
        kept_joints(crab, "fingers")


def test_the_datamodule_describes_the_data_and_round_trips_through_a_checkpoint_dict():
    datamodule = Dance3DDataModule(str(shared_path("bvh", "Gangnam-Style.bvh")))
    datamodule.setup()
    info = datamodule.info
    assert info.features == 4 + 6 * info.num_joints
    assert describe_data(json.loads(json.dumps(info.to_dict()))) == info
    window = datamodule.train_set[0]["motion"]  # (N, F)
    assert window.shape == (48, info.features)
    positions = info.to_positions(datamodule.normalizer.denormalize(window))  # (N, K, 3) metres
    height = positions[..., 1].max() - positions[..., 1].min()
    assert 1.2 < float(height) < 2.2  # a person, in metres
    descriptors, global_positions = datamodule.measure_space(window.numpy())
    assert descriptors.shape == (48, 3 * info.num_joints) and global_positions.shape == (48, info.num_joints, 3)


def test_a_non_bvh_source_is_refused():
    with pytest.raises(UserError, match="BVH"):
        Dance3DDataModule("procedural")


@pytest.fixture(scope="module")
def crab_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("crab")
    cfg = compose_config(
        "train",
        run_dir,
        [
            "experiment=dance3d",
            f"dataset.source={shared_path('bvh', 'Crab-dance-long.bvh')}",
            "+trainer.fast_dev_run=true",
            "generate_after_training.num_samples=2",
            "generate_after_training.chain_windows=3",
            "sampler=ddim",
            "sampler.num_steps=3",
            *TINY_NETWORK,
        ],
    )
    return train.run(cfg)


def test_the_crab_trains_and_writes_bvh_on_its_own_skeleton(crab_run):
    final = crab_run["run_dir"] / "generations" / "final"
    source = shared_path("bvh", "Crab-dance-long.bvh")
    expected, written = load_bvh_hierarchy(source), load_bvh_hierarchy(final / "long_dance.bvh")
    assert written.declared_names == expected.declared_names and written.channels == expected.channels
    assert np.abs(written.skeleton.offsets - expected.skeleton.offsets).max() < 1e-5
    assert written.end_sites == expected.end_sites
    long = load_bvh(final / "long_dance.bvh")
    assert long.num_frames == 48 + 2 * 32 and long.fps == 30
    opening = load_bvh(source)
    # It opens where the source opened: the same ground point and heading on frame 0.
    assert (
        np.abs(
            opening_of(long.local_rotations, long.local_translations[:, 0])
            - opening_of(opening.local_rotations, opening.local_translations[:, 0])
        ).max()
        < 1e-4
    )
    # Bone lengths are the source's by construction.
    lengths = np.linalg.norm(long.local_translations[:, 1:], axis=-1)
    assert np.abs(lengths - np.linalg.norm(expected.skeleton.offsets[1:], axis=-1)).max() < 1e-5
    samples = np.load(final / "samples.npy")
    assert samples.shape == (2, 48, 56, 3) and np.isfinite(samples).all()
    assert iio.imread(final / "long_dance.mp4").shape[0] == 48 + 2 * 32
    assert (final / "sample_01.bvh").is_file()


def test_generate_from_a_3d_dance_run_writes_bvh(crab_run, tmp_path):
    out = tmp_path / "gen"
    cfg = compose_config(
        "generate",
        out,
        [f"run_dir={crab_run['run_dir']}", "num_samples=1", "sampler=ddim", "sampler.num_steps=2", "chain_windows=0"],
    )
    generate.run(cfg)
    clip = load_bvh(out / "sample_00.bvh")
    assert clip.num_frames == 48 and clip.skeleton.num_joints == 56
    summary = json.loads((out / "generation.json").read_text())
    assert summary["foot_lock"] is True and summary["foot_ik"] is True  # foot_ik=auto: the crab's pins fit its data


def test_a_bad_foot_ik_is_refused_before_any_sampling(crab_run, tmp_path):
    out = tmp_path / "gen"
    cfg = compose_config("generate", out, [f"run_dir={crab_run['run_dir']}", "num_samples=1", "foot_ik=yes"])
    with pytest.raises(UserError, match="foot_ik='yes' is not one of true, false, auto"):
        generate.run(cfg)
    assert not (out / "samples.npy").exists()


def test_foot_lock_stops_planted_feet_sliding_and_keeps_the_pose():
    datamodule = Dance3DDataModule(str(shared_path("bvh", "Walk-In-Circle.bvh")))
    datamodule.setup()
    info = datamodule.info
    assert [info.joint_names[j] for j in info.foot_joints] == [
        f"{side}{part}" for side in ("Left", "Right") for part in ("Foot", "ToeBase", "Toe_End")
    ]
    raw = datamodule.raw[: datamodule.train_frames].copy()
    rng = np.random.default_rng(0)
    raw[:, 1:3] += rng.normal(0.0, 0.3, (len(raw), 2))  # the root shakes on the ground: planted feet slide
    locked = info.lock_feet(raw)
    assert np.array_equal(locked[:, [0, *range(3, raw.shape[1])]], raw[:, [0, *range(3, raw.shape[1])]])
    before, after = (info.to_positions(torch.from_numpy(r)).numpy() for r in (raw, locked))
    contacts = info.contacts
    assert foot_skating(after, contacts) < 0.75 * foot_skating(before, contacts)  # measured: 0.104 vs 0.146 m/s
    centred = [p - p[:, :1] for p in (before, after)]  # the pose about the root does not change
    assert np.abs(centred[0] - centred[1]).max() < 1e-9
    assert np.abs(after[0] - before[0]).max() < 1e-9  # it still opens where the source opened


def test_a_3d_dance_description_saved_before_foot_contacts_still_loads():
    datamodule = Dance3DDataModule(str(shared_path("bvh", "Crab-dance-long.bvh")))
    datamodule.setup()
    saved = datamodule.info.to_dict()
    for key in ("foot_joints", "ground", "body_height"):
        del saved[key]
    assert describe_data(saved).foot_joints == ()


def test_channels_are_completed_where_the_file_could_not_hold_a_generated_motion():
    channels = (("Xrotation", "Yrotation", "Zrotation"), ("Xrotation",), (), ("Zrotation", "Xrotation", "Yrotation"))
    written = writable_channels(channels, kept=(0, 1, 3))
    assert written[0] == ("Xposition", "Yposition", "Zposition", "Xrotation", "Yrotation", "Zrotation")
    assert written[1] == ("Xrotation", "Yrotation", "Zrotation")  # a hinge the model may turn any way
    assert written[2] == () and written[3] == channels[3]  # not kept: as the file has it; complete: unchanged


def test_a_single_joint_or_a_too_short_clip_is_refused_in_one_sentence(tmp_path):
    with pytest.raises(UserError, match="at least two joints"):
        (tmp_path / "one").mkdir()
        Dance3DDataModule(str(write_bvh(tmp_path / "one", frames="400", joints=1, rows=400))).setup()
    with pytest.raises(UserError, match="too short"):
        (tmp_path / "short").mkdir()
        Dance3DDataModule(str(write_bvh(tmp_path / "short", frames="1", joints=3, rows=1))).setup()

"""Foot pinning by IK (data.kinematics.foot_ik): contact pins, CCD on a chain, and the 3D dance's `foot_ik` on the
crab, whose planted leg tips a root correction alone cannot hold."""

import numpy as np
import pytest
import torch

from conftest import shared_path
from motiondiff.core.errors import UserError
from motiondiff.data.dance3d import Dance3DDataModule
from motiondiff.data.info import describe_data
from motiondiff.data.kinematics.foot_ik import (
    BLEND_FRAMES,
    contact_pins,
    leg_chains,
    path_transforms,
    pin_feet,
    upper_feet,
)
from motiondiff.data.representations.local_rotations import encode
from motiondiff.metrics.skeleton import foot_skating


def random_rotations(rng, shape, scale=0.6) -> np.ndarray:
    """Rotations (*shape, 3, 3) by angles up to about `scale` radians about random axes."""
    axis = rng.normal(size=(*shape, 3))
    axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
    angle = rng.uniform(-scale, scale, shape)[..., None, None]
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(x)
    skew = np.stack([np.stack([zero, -z, y], -1), np.stack([z, zero, -x], -1), np.stack([-y, x, zero], -1)], -2)
    return np.eye(3) + np.sin(angle) * skew + (1 - np.cos(angle)) * skew @ skew


def test_contact_pins_hold_the_first_position_and_slide_the_goal_in_and_out():
    positions = np.random.default_rng(0).normal(size=(20, 1, 3))
    planted = np.zeros((19, 1), dtype=bool)
    planted[5:10] = True  # pairs 5..9: frames 5..10 share one contact
    goals, weights = contact_pins(positions, planted)
    assert np.allclose(goals[5:11, 0], positions[5, 0], atol=1e-12) and (weights[5:11] == 1).all()
    ramp = np.arange(1, BLEND_FRAMES + 1) / (BLEND_FRAMES + 1)  # 0.2 ... 0.8 for 4 frames
    assert np.allclose(weights[5 - BLEND_FRAMES : 5, 0], ramp)
    assert np.allclose(weights[11 : 11 + BLEND_FRAMES, 0], ramp[::-1])
    fading = positions[1:5, 0] + ramp[:, None] * (positions[5, 0] - positions[1:5, 0])  # that share of the way
    assert np.allclose(goals[1:5, 0], fading)
    untouched = np.r_[0, 11 + BLEND_FRAMES : 20]
    assert (weights[untouched] == 0).all() and np.array_equal(goals[untouched], positions[untouched])


def test_a_fade_cut_by_the_ends_of_the_motion_keeps_its_weights():
    positions = np.random.default_rng(3).normal(size=(10, 1, 3))
    planted = np.zeros((9, 1), dtype=bool)
    planted[1:3] = True  # frames 1..3
    planted[8] = True  # frames 8..9, up to the last frame
    weights = contact_pins(positions, planted)[1][:, 0]
    assert np.allclose(weights, [0.8, 1, 1, 1, 0.8, 0.6, 0.6, 0.8, 1, 1])  # frame 0 is one frame from a contact


def test_one_ccd_sweep_of_one_joint_points_the_foot_at_its_goal():
    rng = np.random.default_rng(4)
    parents = [-1, 0, 1]
    translations = np.broadcast_to(np.array([[0, 0, 0], [0, -0.5, 0], [0.1, -0.4, 0]]), (6, 3, 3)).copy()
    local = random_rotations(rng, (6, 3))
    goals = rng.normal(size=(6, 1, 3))
    pinned = pin_feet(parents, local, translations, [2], [[1]], goals, np.ones((6, 1)), iterations=1)
    positions = path_transforms(parents, pinned, translations, [0, 1, 2])[1]
    reach, goal = positions[2] - positions[1], goals[:, 0] - positions[1]
    cosine = np.sum(reach * goal, -1) / np.linalg.norm(reach, axis=-1) / np.linalg.norm(goal, axis=-1)
    assert np.allclose(cosine, 1.0, atol=1e-9)  # the world-frame turn composed into the local rotation
    assert np.array_equal(pinned[:, :1], local[:, :1])


def test_ccd_reaches_reachable_goals_and_leaves_unpinned_frames_alone():
    """A root, three leg joints and a foot; goals made by other rotations of the same leg, so reachable."""
    rng = np.random.default_rng(1)
    parents, frames = [-1, 0, 1, 2, 3], 12
    translations = np.broadcast_to(
        np.array([[0, 0, 0], [0.1, 0, 0], [0, -0.4, 0], [0, -0.4, 0], [0, -0.1, 0.1]]), (frames, 5, 3)
    ).copy()
    local = random_rotations(rng, (frames, 5))
    goal_rotations = local.copy()
    goal_rotations[:, 1:4] = goal_rotations[:, 1:4] @ random_rotations(rng, (frames, 3), scale=0.3)
    path = [0, 1, 2, 3, 4]
    goals = path_transforms(parents, goal_rotations, translations, path)[1][4][:, None]  # (T, 1, 3)
    weights = np.zeros((frames, 1))
    weights[:8] = 1.0
    chains = leg_chains(parents, [4], {1, 2, 3, 4})
    assert chains == [[3, 2, 1]]
    pinned = pin_feet(parents, local, translations, [4], chains, goals, weights)
    foot = path_transforms(parents, pinned, translations, path)[1][4]
    assert np.linalg.norm(foot[:8] - goals[:8, 0], axis=-1).max() < 0.01 * 0.9  # within 1% of the leg's length
    assert np.array_equal(pinned[8:], local[8:]) and np.array_equal(pinned[:, [0, 4]], local[:, [0, 4]])
    assert np.allclose(pinned @ np.swapaxes(pinned, -1, -2), np.eye(3), atol=1e-9)  # still rotations
    assert np.allclose(np.linalg.det(pinned), 1.0)


def test_a_human_leg_is_pinned_once_at_the_ankle():
    datamodule = Dance3DDataModule(str(shared_path("bvh", "Gangnam-Style.bvh")))
    datamodule.setup()
    info = datamodule.info
    feet = [info.kept[k] for k in info.foot_joints]
    upper = upper_feet(info.file_parents, feet)
    assert [info.file_names[j].split(":")[-1] for j in upper] == ["LeftFoot", "RightFoot"]
    chains = leg_chains(info.file_parents, upper, set(info.kept[1:]))
    assert [[info.file_names[j].split(":")[-1] for j in chain] for chain in chains] == [
        ["LeftLeg", "LeftUpLeg"],
        ["RightLeg", "RightUpLeg"],
    ]  # up to CHAIN joints: the hips are the root


def test_pinning_stops_the_crabs_planted_legs_sliding_and_turns_only_the_legs():
    datamodule = Dance3DDataModule(str(shared_path("bvh", "Crab-dance-long.bvh")), with_positions=True)
    datamodule.setup()
    info, layout = datamodule.info, datamodule.info.layout
    raw = datamodule.raw[:240].copy()
    rng = np.random.default_rng(2)
    shake = 0.0015 / info.metres_per_unit  # 1.5 mm a frame: planted tips slide, still slowly enough to count as planted
    raw[:, 1:3] += rng.normal(0.0, shake, (len(raw), 2))
    raw[:, 3] += rng.normal(0.0, 0.002, len(raw))  # and the body turns a little
    pinned = info.pin_feet(raw)
    before, after = (info.to_positions(torch.from_numpy(r)).numpy() for r in (raw, pinned))
    contacts = info.contacts
    assert foot_skating(after, contacts) < 0.25 * foot_skating(before, contacts)  # measured: 0.0074 vs 0.053 m/s
    chains = leg_chains(info.file_parents, [info.kept[k] for k in contacts.joints], set(info.kept[1:]))
    turned = {info.kept.index(joint) for chain in chains for joint in chain}
    columns = np.ones(raw.shape[1], dtype=bool)
    for k in turned:
        columns[layout.rotations.start + 6 * k : layout.rotations.start + 6 * k + 6] = False
    if info.with_positions:
        columns[layout.positions] = False
    assert np.array_equal(pinned[:, columns], raw[:, columns])  # the root and every other joint as they were
    local, path, _ = info.decode(pinned)  # the pinned features are one motion's, positions block included
    encoded = encode(local, path, np.asarray(info.offsets), info.file_parents, layout, info.up)
    assert np.abs(encoded[:-1] - pinned[:-1]).max() < 1e-6
    assert np.array_equal(info.clean_feet(raw, lock=False, pin=False), raw)


@pytest.mark.parametrize("name, fits", [("Crab-dance-long", True), ("Gangnam-Style", False), ("Walk-In-Circle", False)])
def test_auto_pins_where_pinning_keeps_the_training_span_smooth(name, fits):
    """A crab's leg tips stay put through a contact; a human ankle rolls, so pinning it bends the leg (the walk's
    training span 3x as jerky): foot_ik=auto pins the crab only."""
    datamodule = Dance3DDataModule(str(shared_path("bvh", f"{name}.bvh")))
    datamodule.setup()
    info = datamodule.info
    assert info.pins_fit is fits and info.pins("auto") is fits and info.pins(True) and not info.pins(False)
    assert describe_data(info.to_dict()).pins_fit is fits  # saved with the run
    with pytest.raises(UserError, match="foot_ik='always' is not one of true, false, auto"):
        info.pins("always")

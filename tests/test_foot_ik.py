"""Foot pinning by IK (data.kinematics.foot_ik): contact pins, CCD on a chain, and the 3D dance's `foot_ik` on the
crab, whose planted leg tips a root correction alone cannot hold."""

import numpy as np
import pytest
import torch

from conftest import shared_path
from motiondiff.core.errors import UserError
from motiondiff.data.dance3d import Dance3DDataModule
from motiondiff.data.info import describe_data
from motiondiff.data.kinematics.foot_ik import BLEND_FRAMES, contact_pins, leg_chains, path_transforms, pin_feet
from motiondiff.data.kinematics.skeleton import bone_lengths
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


def test_contact_pins_hold_the_first_position_and_fade_at_the_ends():
    positions = np.random.default_rng(0).normal(size=(20, 1, 3))
    planted = np.zeros((19, 1), dtype=bool)
    planted[5:10] = True  # pairs 5..9: frames 5..10 share one contact
    targets, weights = contact_pins(positions, planted)
    assert np.array_equal(targets[5:11, 0], np.repeat(positions[5:6, 0], 6, axis=0)) and (weights[5:11] == 1).all()
    ramp = np.arange(1, BLEND_FRAMES + 1) / (BLEND_FRAMES + 1)
    assert np.allclose(weights[5 - BLEND_FRAMES : 5, 0], ramp) and np.allclose(
        weights[11 : 11 + BLEND_FRAMES, 0], ramp[::-1]
    )
    assert np.array_equal(targets[1:5, 0], np.repeat(positions[5:6, 0], 4, axis=0))  # fading towards the same spot
    untouched = np.r_[0, 11 + BLEND_FRAMES : 20]
    assert (weights[untouched] == 0).all() and np.array_equal(targets[untouched], positions[untouched])


def test_ccd_reaches_reachable_targets_and_leaves_unpinned_frames_alone():
    """A root, three leg joints and a foot; targets made by other rotations of the same leg, so reachable."""
    rng = np.random.default_rng(1)
    parents, frames = [-1, 0, 1, 2, 3], 12
    translations = np.broadcast_to(
        np.array([[0, 0, 0], [0.1, 0, 0], [0, -0.4, 0], [0, -0.4, 0], [0, -0.1, 0.1]]), (frames, 5, 3)
    ).copy()
    local = random_rotations(rng, (frames, 5))
    goal_rotations = local.copy()
    goal_rotations[:, 1:4] = goal_rotations[:, 1:4] @ random_rotations(rng, (frames, 3), scale=0.3)
    path = [0, 1, 2, 3, 4]
    targets = path_transforms(parents, goal_rotations, translations, path)[1][4][:, None]  # (T, 1, 3)
    weights = np.zeros((frames, 1))
    weights[:8] = 1.0
    chains = leg_chains(parents, [4], {1, 2, 3, 4})
    assert chains == [[3, 2, 1]]
    pinned = pin_feet(parents, local, translations, [4], chains, targets, weights)
    foot = path_transforms(parents, pinned, translations, path)[1][4]
    assert np.linalg.norm(foot[:8] - targets[:8, 0], axis=-1).max() < 0.01 * 0.9  # within 1% of the leg's length
    assert np.array_equal(pinned[8:], local[8:]) and np.array_equal(pinned[:, [0, 4]], local[:, [0, 4]])
    assert np.allclose(pinned @ np.swapaxes(pinned, -1, -2), np.eye(3), atol=1e-9)  # still rotations
    assert np.allclose(np.linalg.det(pinned), 1.0)


def test_pinning_stops_the_crabs_planted_legs_sliding_and_turns_only_the_legs():
    datamodule = Dance3DDataModule(str(shared_path("bvh", "Crab-dance-long.bvh")))
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
    assert np.allclose(bone_lengths(after, info.parents), bone_lengths(before, info.parents), atol=1e-9)
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

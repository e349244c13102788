"""Foot contacts and skating: a synthetic walker with planted or sliding feet, and the contact joints of real clips."""

import numpy as np
import pytest

from conftest import shared_path
from motiondiff.data.formats.bvh import load_bvh, resample
from motiondiff.data.info import KeypointData
from motiondiff.data.kinematics.contacts import contact_joints, contacts_of
from motiondiff.metrics.single_motion import single_motion_report
from motiondiff.metrics.skeleton import foot_skating

FPS = 30.0
# pelvis, then hip, knee, ankle, toe of the left and the right leg, then the head
PARENTS = (-1, 0, 1, 2, 3, 0, 5, 6, 7, 0)
FEET = (3, 4, 7, 8)


def foot_track(frames: int, phase: int, slide: float) -> np.ndarray:
    """Ankle (T, 3) of a foot that steps 1.2 m every 30 frames: planted 18 frames (drifting `slide` m/s), then a
    12-frame swing that lifts it 15 cm and eases in and out."""
    track, x = np.zeros((frames, 3)), 0.0
    for t in range(frames):
        cycle = (t + phase) % 30
        if cycle < 18:
            x, height = x + (slide / FPS if cycle else 0.0), 0.08
        else:
            ease = (cycle - 17) / 12  # 1/12 .. 1 through the swing
            x, height = x + 1.2 * (np.cos(np.pi * (ease - 1 / 12)) - np.cos(np.pi * ease)) / 2, 0.08
            height += 0.15 * np.sin(np.pi * ease)
        track[t] = (x, height, 0.0)
    return track


def walker(slide: float = 0.0, frames: int = 150) -> np.ndarray:
    """Positions (T, 10, 3) in metres, y up: a walker whose feet are planted (slide 0) or slide while down."""
    left, right = foot_track(frames, 0, slide), foot_track(frames, 15, slide)
    body = (left[:, 0] + right[:, 0]) / 2  # (T,)
    positions = np.zeros((frames, 10, 3))
    positions[:, 0] = np.stack([body, np.full(frames, 1.0), np.zeros(frames)], axis=1)
    positions[:, 9] = positions[:, 0] + (0, 0.7, 0)
    for side, ankle, z in ((1, left, 0.1), (5, right, -0.1)):
        hip = positions[:, 0] + (0, -0.1, z)
        positions[:, side] = hip
        positions[:, side + 2] = ankle + (0, 0, z)
        positions[:, side + 1] = (hip + positions[:, side + 2]) / 2 + (0.05, 0, 0)  # the knee, a little forward
        positions[:, side + 3] = positions[:, side + 2] + (0.15, -0.06, 0)  # the toe
    return positions


def test_walker_contact_joints_are_its_ankles_and_toes():
    assert contact_joints(walker(), PARENTS, 1) == FEET


def test_planted_feet_do_not_skate_and_sliding_feet_do():
    contacts = contacts_of(walker(), PARENTS, 1, FPS)
    planted, sliding = foot_skating(walker(), contacts), foot_skating(walker(slide=0.2), contacts)
    assert planted < 0.02  # m/s: only the eased ends of the swings, low and slow, count
    assert sliding > 0.15 and sliding > 10 * planted
    assert contacts.in_contact(walker()).mean() > 0.4  # about 18 of every 30 frames are planted


def test_the_report_gives_the_skating_ratio_in_3d_only():
    data = walker(slide=0.02)  # the training data skates a little: 2 cm/s
    info = KeypointData(30, 10, 3, FPS, tuple("pHKATHKATh"), PARENTS, 1.0, "walker", 48, (1.0,) * 9)

    def ratio(generated, up_index=1):
        descriptors = [clip.reshape(len(clip), -1) for clip in (generated, data)]
        report = single_motion_report(
            [descriptors[0]], descriptors[1], [descriptors[1][-48:]], info, [generated], data, up_index
        )
        return report["foot_skating_ratio"]

    assert ratio(data) == pytest.approx(1.0)
    assert ratio(walker()) == pytest.approx(0.0, abs=1e-9)
    assert ratio(walker(slide=0.2)) == pytest.approx(10.0, rel=0.05)
    assert np.isnan(ratio(walker(slide=0.2), up_index=None))  # no up axis: no contacts


def clip_contacts(name: str) -> set:
    """Names of the contact joints of a shared clip's training span (the first 85%, at 30 fps)."""
    clip = resample(load_bvh(shared_path("bvh", name)), FPS)
    positions = clip.positions()[: int(0.85 * clip.num_frames)]  # (T, J, 3), y up
    return {clip.skeleton.names[j] for j in contact_joints(positions, clip.skeleton.parents, 1)}


def test_gangnam_style_stands_on_its_feet_and_toes():
    expected = {f"{side}{part}" for side in ("Left", "Right") for part in ("Foot", "ToeBase", "Toe_End")}
    assert clip_contacts("Gangnam-Style.bvh") == expected


def test_the_crab_stands_on_its_leg_tips():
    contacts = clip_contacts("Crab-dance-long.bvh")
    assert len(contacts) == 6 and all("_leg_" in name.lower() and name.endswith("_end") for name in contacts)

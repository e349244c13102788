"""Single-motion measures (coverage, local/global/inter/intra diversity, copy check) on inputs with known answers."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from motiondiff.core.errors import UserError
from motiondiff.data.dance_windows import DanceDataModule
from motiondiff.data.info import KeypointData
from motiondiff.metrics.single_motion import (
    REPLAYS,
    REPORT_KEYS,
    clip_coverage,
    coverage,
    frozen_share,
    global_diversity,
    inter_diversity,
    intra_diversity,
    local_diversity,
    patched_reconstruction_cost,
    replay_clips,
    resolve_windows,
    single_motion_report,
    sliding_windows,
    window_speeds,
)

EXACT = 1e-6  # distances of exact copies come out of a |a|^2 + |b|^2 - 2ab expansion: zero up to rounding


@pytest.fixture(scope="module")
def dance():
    """The embedded procedural dance, cut as in the dance experiment: (training features, validation features, info)."""
    data = DanceDataModule(window=48)
    data.setup("fit")
    return data.train_set.features.numpy(), data.val_set.features.numpy(), data.info, data.normalizer


@pytest.fixture(scope="module")
def walk():
    """A random walk (200, 6) with unit steps: windows at different positions lie far apart (RMS >> 0.1)."""
    return np.cumsum(np.random.default_rng(0).normal(size=(200, 6)), axis=0)


def training_windows(training, size=48, stride=16):
    """Windows of the training sequence whose 30-frame sub-windows include every training window."""
    starts = list(range(0, len(training) - size + 1, stride)) + [len(training) - size]
    return np.stack([training[s : s + size] for s in starts])  # (K, size, F)


# ---------------------------------------------------------------- sliding windows


def test_sliding_windows_are_strided_views():
    sequence = np.arange(30.0).reshape(10, 3)
    windows = sliding_windows(sequence, 4, stride=3)
    assert windows.shape == (3, 4, 3)  # starts 0, 3, 6
    np.testing.assert_array_equal(windows[1], sequence[3:7])
    assert np.shares_memory(windows, sequence)
    assert sliding_windows(sequence, 10).shape == (1, 10, 3)
    with pytest.raises(UserError, match="11 frames does not fit a sequence of 10 frames"):
        sliding_windows(sequence, 11)


# ---------------------------------------------------------------- the dance itself, noise, and the full report


def test_training_windows_cover_the_dance_without_diversity(dance):
    training, validation, info, _ = dance
    generated = training_windows(training)
    report = single_motion_report(generated, training, [validation], info)
    assert coverage(generated, training, 30) == 1.0  # pooled: every training window is in some generated window
    assert 19 / 736 <= report["coverage"] < 0.2  # per clip: a 48-frame clip holds 19 of the 736 (and near repeats)
    assert report["local_diversity"] < EXACT
    assert report["global_diversity"] < EXACT
    assert report["nn_distance_to_training"] < EXACT and report["copy_ratio"] < EXACT
    assert report["copies_training"] is True
    assert report["bone_length_error"] < 0.01  # windows weight the middle frames more than the whole span does
    assert abs(report["jitter_ratio"] - 1) < 0.05
    assert report["frozen_share"] == 0.0  # no window of the dance is stiller than its own slowest
    # The whole training sequence as one clip: exact zeros and ratios of one, no pair of clips to compare.
    whole = single_motion_report([training], training, [validation], info)
    assert whole["coverage"] == 1.0
    assert whole["bone_length_error"] < EXACT and abs(whole["jitter_ratio"] - 1) < EXACT
    assert math.isnan(whole["inter_diversity"])


def test_gaussian_noise_covers_nothing_and_breaks_the_skeleton(dance):
    training, validation, info, _ = dance
    noise = np.random.default_rng(1).normal(size=training.shape)
    report = single_motion_report([noise], training, [validation], info)
    assert report["coverage"] == 0.0
    assert report["local_diversity"] > 1.0  # unit-variance noise against a unit-spread dance: about sqrt(2)
    assert report["bone_length_error"] > 1.0  # the training data's own error is 0 (test above)
    assert report["jitter_ratio"] > 10
    assert report["copies_training"] is False and report["copy_ratio"] > 1
    assert math.isnan(report["foot_skating_ratio"])  # 2D keypoints: no foot contacts


def test_report_keys_types_and_windows(dance):
    training, validation, info, _ = dance
    report = single_motion_report(sliding_windows(validation, 48, 16), training, [validation], info)
    assert tuple(report) == REPORT_KEYS
    assert all(type(value) is float for key, value in report.items() if key != "copies_training")
    assert type(report["copies_training"]) is bool
    assert resolve_windows([training], info) == {
        "coverage_window": 30,
        "local_window": 15,
        "min_segment": 30,
        "diversity_window": 15,
        "copy_window": 48,
    }
    assert resolve_windows([training[:20]], dataclasses.replace(info, fps=60)) == {
        "coverage_window": 20,
        "local_window": 20,
        "min_segment": 20,
        "diversity_window": 20,
        "copy_window": 20,
    }


def test_positions_in_original_units_give_the_same_skeleton_measures(dance):
    """One shift and one scale separate features from keypoints: relative bone error and jitter ratio ignore both."""
    training, validation, info, normalizer = dance
    generated = sliding_windows(validation, 48, 16) + np.random.default_rng(2).normal(scale=0.02, size=(6, 48, 40))
    default = single_motion_report(generated, training, [validation], info)

    def positions(features):
        return normalizer.denormalize(torch.from_numpy(features).float()).double().numpy()  # (T, J, 2)

    original = single_motion_report(
        generated, training, [validation], info, [positions(clip) for clip in generated], positions(training)
    )
    assert default["bone_length_error"] > 0.01
    assert original["bone_length_error"] == pytest.approx(default["bone_length_error"], rel=1e-4)
    assert original["jitter_ratio"] == pytest.approx(default["jitter_ratio"], rel=1e-4)
    assert original["coverage"] == default["coverage"]  # descriptors unchanged
    with pytest.raises(UserError, match="both, or neither"):
        single_motion_report(generated, training, [validation], info, [positions(clip) for clip in generated])


# ---------------------------------------------------------------- shifted, offset and reversed copies (random walk)


@pytest.mark.parametrize("shift", [0, 37, 150])
def test_time_shifted_crop_covers_exactly_the_windows_it_contains(walk, shift):
    window = 10
    crop = walk[shift:]
    expected = (len(walk) - shift - window + 1) / (len(walk) - window + 1)
    assert coverage([crop], walk, window, threshold=0.1) == pytest.approx(expected, abs=1e-12)
    assert local_diversity([crop], walk, window) < EXACT
    assert global_diversity([crop], walk, min_segment=30) < EXACT


@pytest.mark.parametrize("offset, covered", [(0.05, 1.0), (0.2, 0.0)])
def test_spatial_offset_is_measured_exactly(walk, offset, covered):
    """Each coordinate moved by `offset`: each window's nearest training window is its own, at RMS distance `offset`."""
    moved = walk + offset
    assert coverage([moved], walk, 10, threshold=0.1) == covered
    assert local_diversity([moved], walk, 15) == pytest.approx(offset, rel=1e-6)
    assert global_diversity([moved], walk, 30) == pytest.approx(offset, rel=1e-6)


def test_time_reversed_copy(walk):
    """Same poses, opposite order: single frames all match, windows of several frames do not."""
    reversed_walk = walk[::-1]
    assert coverage([reversed_walk], walk, 1, threshold=0.1) == 1.0
    assert coverage([reversed_walk], walk, 5, threshold=0.1) == 0.0
    assert local_diversity([reversed_walk], walk, 1) < EXACT
    assert local_diversity([reversed_walk], walk, 15) > 1.0
    assert (
        global_diversity([reversed_walk], walk, min_segment=1) < EXACT
    )  # any frame order is a collage of 1-frame pieces
    assert global_diversity([reversed_walk], walk, min_segment=10) > 0.5
    # Tiles of the reversed walk (200 = 8 x 25 frames) are the reversed tiles: the same pairwise distances.
    assert intra_diversity([reversed_walk], 25) == pytest.approx(intra_diversity([walk], 25), rel=1e-12)
    assert intra_diversity([walk], 25) > 1.0


# ---------------------------------------------------------------- global diversity: collages and brute force


def test_collage_of_long_training_pieces_costs_nothing(walk):
    collage = np.concatenate([walk[100:140], walk[20:60], walk[150:190]])  # three 40-frame pieces
    assert global_diversity([collage], walk, min_segment=30) < EXACT
    assert global_diversity([collage], walk, min_segment=40) < EXACT
    assert global_diversity([collage], walk, min_segment=41) > 0.5  # a piece must now span a seam
    assert global_diversity([collage, walk[:50]], walk, min_segment=30) < EXACT


def test_a_clip_no_cut_into_long_pieces_can_rebuild_costs_infinity(walk):
    """55 frames from 50 training frames: one 55-frame piece does not fit, two pieces need 60 (GANimator: inf)."""
    assert patched_reconstruction_cost(walk[:55], walk[:50], min_segment=30) == math.inf
    assert global_diversity([walk[:55], walk[:50]], walk[:50], min_segment=30) == math.inf
    assert math.isfinite(patched_reconstruction_cost(walk[:60], walk[:50], min_segment=30))  # two 30-frame pieces fit


def brute_force_reconstruction(clip, training, min_segment):
    """GANimator's formulation: try every cut into segments >= min_segment and every training match of each segment."""
    length = len(clip)
    min_segment = min(min_segment, length, len(training))
    cost = np.sqrt(((clip[:, None] - training[None]) ** 2).mean(-1))  # (T, Tt)

    def best_match(p, q):
        return min(sum(cost[p + i, k + i] for i in range(q - p)) for k in range(len(training) - (q - p) + 1))

    best = [0.0] + [math.inf] * length
    for q in range(1, length + 1):
        for p in range(0, q - min_segment + 1):
            best[q] = min(best[q], best[p] + best_match(p, q))
    return best[length] / length


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("min_segment", [1, 2, 3, 5, 9, 20])
def test_dynamic_programme_matches_brute_force(seed, min_segment):
    rng = np.random.default_rng(seed)
    training, clip = rng.normal(size=(12, 3)), rng.normal(size=(9, 3))
    clip[2:6] = training[4:8]  # a piece worth reusing
    expected = brute_force_reconstruction(clip, training, min_segment)
    assert patched_reconstruction_cost(clip, training, min_segment) == pytest.approx(expected, rel=1e-9, abs=1e-9)


# ---------------------------------------------------------------- inter and intra diversity (SinMDM)


def test_inter_diversity_known_answers():
    rng = np.random.default_rng(3)
    clip = rng.normal(size=(30, 4))
    assert inter_diversity([clip, clip.copy(), clip.copy()], 15) == 0.0
    constants = [np.full((15, 4), value) for value in (0.0, 1.0, 3.0)]  # pair distances 1, 3, 2
    assert inter_diversity(constants, 15) == pytest.approx(2.0)
    half_different = np.zeros((30, 4))
    half_different[:15] = 1.0  # the first tiles differ by 1, the second tiles agree
    assert inter_diversity([np.zeros((30, 4)), half_different], 15) == pytest.approx(0.5)
    other = rng.normal(size=(15, 4))
    assert inter_diversity([clip[:15], other], 15) == pytest.approx(np.sqrt(np.mean((clip[:15] - other) ** 2)))
    # Clips of different lengths are compared over their common tiles; one clip has no partner.
    assert inter_diversity(np.stack([np.zeros((45, 4)), np.ones((45, 4))]), 15) == pytest.approx(1.0)
    assert math.isnan(inter_diversity([clip], 15))


def test_intra_diversity_known_answers():
    assert intra_diversity([np.full((60, 4), 2.5)], 15) == 0.0
    steps = np.concatenate([np.full((15, 4), value) for value in (0.0, 1.0, 3.0)])  # tile pairs 1, 3, 2
    assert intra_diversity([steps], 15) == pytest.approx(2.0)
    assert intra_diversity([steps, np.zeros((45, 4))], 15) == pytest.approx(1.0)  # the mean over clips
    loop = np.tile(np.random.default_rng(4).normal(size=(15, 4)), (4, 1))  # a 15-frame loop repeated
    assert intra_diversity([loop], 15) < EXACT
    assert intra_diversity([loop], 10) > 0.5  # tiles out of phase with the loop differ
    assert math.isnan(intra_diversity([np.zeros((29, 4))], 15))


# ---------------------------------------------------------------- the copy check


def test_held_out_windows_score_one_and_copies_zero(dance):
    """The copy yardstick is the held-out windows' own nearest-training distance: they score exactly 1."""
    training, validation, info, _ = dance
    copies = single_motion_report(training_windows(training), training, [validation], info)
    held_out = single_motion_report([validation], training, [validation], info)
    noise = single_motion_report(np.random.default_rng(6).normal(size=(8, 48, 40)), training, [validation], info)
    assert held_out["copy_ratio"] == 1.0 and not held_out["copies_training"]
    assert copies["copy_ratio"] < EXACT and copies["copies_training"]
    assert noise["copy_ratio"] > 1 and not noise["copies_training"]
    assert copies["heldout_nn_distance"] == held_out["heldout_nn_distance"] > 0.1  # the dance repeats, not exactly
    strided = single_motion_report(sliding_windows(validation, 48, 8), training, [validation], info)
    assert 0.8 < strided["copy_ratio"] < 1.25 and not strided["copies_training"]  # a subset of the held-out windows


def test_coverage_is_per_clip_averaged(walk):
    """GANimator scores each clip alone: two halves of the walk each hold 91 of its 191 windows; pooled 182."""
    first, second = walk[:100], walk[100:]
    info = KeypointData(6, 3, 2, 30.0, ("a", "b", "c"), (-1, 0, 1), 1.0, "walk", 10, (1.0, 1.0))
    report = single_motion_report([first, second], walk, [walk[150:]], info, coverage_window=10)
    assert coverage([first, second], walk, 10) == pytest.approx(182 / 191)  # pooled, as before
    assert report["coverage"] == pytest.approx((91 / 191 + 91 / 191) / 2)
    assert report["pooled_coverage"] == pytest.approx(182 / 191)  # no window across the two clips' joint


def test_replay_clips_are_exact_training_windows_of_the_asked_lengths(walk):
    clips = replay_clips(walk, [100, 37, 48], piece=24, seed=3)
    assert [len(clip) for clip in clips] == [100, 37, 48]
    for clip in clips:
        for start in range(0, len(clip), 24):
            piece = clip[start : start + 24]  # each 24-frame piece (the last one cut) is a training stretch
            distances = np.abs(sliding_windows(walk, len(piece)) - piece).max(axis=(1, 2))
            assert distances.min() == 0.0
    again = replay_clips(walk, [100, 37, 48], piece=24, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(clips, again))  # a fixed seed: the same yardstick every time
    # Two possible pieces (starts 0 and 1): both are drawn, each whole.
    short = walk[:25]
    firsts = {tuple(clip[0]) for clip in replay_clips(short, [24] * 40, piece=24)}
    assert firsts == {tuple(short[0]), tuple(short[1])}


def test_the_report_replays_each_clip_length_four_times(dance):
    training, validation, info, _ = dance
    clips = [training[:100], training[50:180]]
    report = single_motion_report(clips, training, [validation], info)
    replays = replay_clips(training, [100, 130] * REPLAYS, 48)
    assert REPLAYS == 4 and report["replay_coverage"] == clip_coverage(replays, training, 30)


def test_replay_coverage_tells_a_repetitive_dance_from_one_that_never_repeats(walk):
    """A loop is covered by any replay of its windows; the random walk, whose windows never repeat, is covered by a
    replay as long as itself only where the random pieces happened to fall (far below 0.9)."""
    info = KeypointData(6, 3, 2, 30.0, ("a", "b", "c"), (-1, 0, 1), 1.0, "walk", 48, (1.0, 1.0))
    loop = np.tile(walk[:20], (10, 1))  # (200, 6): a 20-frame move danced ten times
    looped = single_motion_report([loop, loop], loop, [loop[:60]], info)
    assert looped["replay_coverage"] == 1.0
    never = single_motion_report([walk, walk], walk, [walk[150:]], info)
    assert 0.3 < never["replay_coverage"] < 0.8
    assert never["coverage"] == never["pooled_coverage"] == 1.0  # the walk itself, twice


# ---------------------------------------------------------------- frozen share


def test_window_speeds_are_the_mean_joint_speed_per_window():
    frames = np.arange(10.0)
    positions = np.stack([np.stack([frames, 0 * frames], -1), np.stack([0 * frames, 2 * frames], -1)], 1)  # (10, 2, 2)
    speeds = window_speeds(positions, 4)
    assert speeds.shape == (7,) and np.allclose(speeds, 1.5)  # joint speeds 1 and 2
    positions[5:] = positions[5]  # still after frame 5: windows of 3 steps from step 3 on take in the stillness
    assert np.allclose(window_speeds(positions, 4), [1.5, 1.5, 1.5, 1.0, 0.5, 0.0, 0.0])


def test_a_clip_that_holds_a_pose_is_frozen_and_the_dance_is_not(dance):
    training, validation, info, _ = dance
    positions = training.reshape(len(training), -1, 2)  # (T, J, 2)
    assert frozen_share([positions], positions, 30) == 0.0
    held = np.repeat(positions[:1], 200, axis=0)  # one pose for 200 frames
    assert frozen_share([held], positions, 30) == 1.0
    # A chain that dances 200 frames and then stands for 200: the windows inside the still part (171 of 371).
    chain = np.concatenate([positions[:200], np.repeat(positions[199:200], 200, axis=0)])
    share = frozen_share([chain], positions, 30)
    assert 171 / 371 <= share <= 190 / 371, share
    # A dance that itself holds still for a second allows it.
    still_dance = np.concatenate([positions[:300], np.repeat(positions[299:300], 40, axis=0), positions[300:]])
    assert frozen_share([held], still_dance, 30) == 0.0
    report = single_motion_report([chain.reshape(len(chain), -1)], training, [validation], info)
    assert report["frozen_share"] == share

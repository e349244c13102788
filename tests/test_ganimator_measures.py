"""GANimator's measures in its own units (metrics.ganimator): its definitions, and how strict they are on real clips."""

import warnings

import numpy as np
import pytest

from conftest import shared_path
from motiondiff.data.dance3d import Dance3DDataModule
from motiondiff.data.dance_windows import DanceDataModule
from motiondiff.evaluation.single_dance import matched_coverage_setup
from motiondiff.metrics import ganimator
from motiondiff.metrics.single_motion import clip_coverage, replay_clips


def test_rotation_rows_are_each_matrix_s_first_two_rows():
    rotations = np.stack([np.eye(3), np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])])[None]  # (1, 2, 3, 3)
    assert ganimator.rotation_rows(rotations).tolist() == [[1, 0, 0, 0, 1, 0, 0, -1, 0, 1, 0, 0]]


def test_window_costs_are_the_least_mean_frame_norm_over_reference_windows():
    rng = np.random.default_rng(0)
    queries, references, window = rng.normal(size=(12, 5)), rng.normal(size=(9, 5)), 4
    expected = [
        min(
            np.mean([np.linalg.norm(queries[i + m] - references[j + m]) for m in range(window)])
            for j in range(9 - window + 1)
        )
        for i in range(12 - window + 1)
    ]
    assert np.allclose(ganimator.nearest_window_costs(queries, references, window), expected, rtol=1e-12)


def test_coverage_leaves_out_the_last_training_window_as_ganimator_s_loop_does():
    training = np.random.default_rng(1).normal(size=(40, 30)) * 3  # unrelated windows cost far more than 2
    assert ganimator.coverage(np.concatenate([training, training]), training) == 1.0
    assert ganimator.coverage(training[9:], training) == 1.0 / 10  # starts 9 and 10 matched; 10 is not counted
    assert ganimator.coverage(training[10:], training) == 0.0
    assert ganimator.coverage(training, training, threshold=0.0) == 0.0  # strictly under: an exact copy costs 0


def test_an_offset_clip_costs_the_offset_s_norm_everywhere():
    training = np.random.default_rng(2).normal(size=(80, 6))
    offset = np.array([0.3, 0.0, -0.4, 0.0, 0.0, 0.0])  # norm 0.5
    clip = training[5:75] + offset
    report = ganimator.published_report([clip, clip], training, fps=30)
    assert report["ganimator_local_diversity"] == pytest.approx(0.5, abs=1e-9)
    assert report["ganimator_global_diversity"] == pytest.approx(0.5, abs=1e-9)
    assert report["ganimator_coverage"] == 41 / 50  # starts 5 to 45 of the 50 counted (0 to 49)
    collage = np.concatenate([training[40:75], training[0:31]])  # two segments of >= 30 frames: a copy
    assert ganimator.global_diversity(collage, training) == pytest.approx(0.0, abs=1e-9)


def test_windows_are_durations_and_a_clip_too_short_for_one_scores_nan():
    assert ganimator.published_windows(30) == {"coverage_window": 30, "local_window": 15, "min_segment": 30}
    assert ganimator.published_windows(24) == {"coverage_window": 24, "local_window": 12, "min_segment": 24}
    training = np.random.default_rng(3).normal(size=(60, 6))
    short = ganimator.published_report([training[:20], training[:40]], training, fps=30)
    assert np.isnan(short["ganimator_coverage"]) and np.isnan(short["ganimator_global_diversity"])  # 20 < 30 frames
    assert np.isfinite(short["ganimator_local_diversity"])  # its 15-frame windows fit
    assert np.isnan(ganimator.local_diversity(training[:15], training)) and np.isnan(
        ganimator.coverage(training, training[:30])
    )
    assert ganimator.coverage(training[:30], training) > 0  # one window of the clip: it still covers its own


# (clip, the span's mean pose held, random replays of its 48-frame windows): the module docstring's figures.
STRICTNESS = [("Crab-dance-long", 0.017, 0.972), ("Gangnam-Style", 0.211, 0.999), ("Walk-In-Circle", 1.0, 1.0)]


@pytest.mark.parametrize("name, frozen, replayed", STRICTNESS)
def test_how_strict_ganimator_s_threshold_is_on_the_shared_clips(name, frozen, replayed):
    data = Dance3DDataModule(str(shared_path("bvh", f"{name}.bvh")))
    data.setup("fit")
    training = ganimator.rotation_rows(data.local_rotations(data.train_set.features.numpy()))  # (T, 6K)
    kept = list(data.layout.kept)
    own = ganimator.rotation_rows(data.clip.local_rotations[: len(training), kept])
    assert np.abs(training - own).max() < 1e-5  # decoded from the features: the file's own rotations, root included
    # The held-out span opens where the training span ends: its root's heading is the file's there.
    heldout = ganimator.rotation_rows(data.local_rotations(data.val_set.features.numpy(), len(training)))
    assert np.abs(heldout - ganimator.rotation_rows(data.clip.local_rotations[len(training) :, kept])).max() < 1e-5
    held = np.repeat(training.mean(axis=0, keepdims=True), 2 * len(training), axis=0)
    assert ganimator.coverage(held, training) == pytest.approx(frozen, abs=0.01)
    replays = replay_clips(training, [2 * len(training)] * 4, 48)
    assert np.mean([ganimator.coverage(clip, training) for clip in replays]) == pytest.approx(replayed, abs=0.01)


def test_window_pair_costs_are_every_pair_a_window_apart():
    rng = np.random.default_rng(3)
    descriptors, rows, window = rng.normal(size=(20, 4)), rng.normal(size=(20, 6)), 4
    rms, cost = ganimator.window_pair_costs(descriptors, rows, window)
    pairs = [(i, j) for i in range(17) for j in range(i + window, 17)]  # starts 0 to 16, at least 4 apart
    assert len(rms) == len(cost) == len(pairs)
    for k, (i, j) in enumerate(pairs):
        a, b = descriptors[i : i + window], descriptors[j : j + window]
        assert rms[k] == pytest.approx(np.sqrt(np.mean((a - b) ** 2)), rel=1e-12)
        norms = np.linalg.norm(rows[i : i + window] - rows[j : j + window], axis=1)
        assert cost[k] == pytest.approx(norms.mean(), rel=1e-12)


def test_the_matched_threshold_counts_as_many_pairs_alike_as_ganimator_s():
    rng = np.random.default_rng(4)
    rows = rng.uniform(0, 4, size=(60, 1))  # one feature, windows of one frame: GANimator's cost is |difference|
    # Descriptors that order the pairs as the rows do, in other units: the decisions agree pair for pair.
    threshold, kappa, alike = ganimator.matched_threshold(0.05 * rows, rows, window=1)
    rms, cost = ganimator.window_pair_costs(0.05 * rows, rows, 1)
    below, above = cost[cost < 2.0].max(), cost[cost >= 2.0].min()
    assert 0.05 * below < threshold < 0.05 * above and kappa == pytest.approx(1.0)
    assert alike == np.mean(cost < 2.0) and np.mean(rms < threshold) == alike
    # Descriptors unrelated to the rows: as many pairs alike, by chance only.
    unrelated = rng.uniform(0, 4, size=(60, 1))
    threshold, kappa, alike = ganimator.matched_threshold(unrelated, rows, window=1)
    rms, _ = ganimator.window_pair_costs(unrelated, rows, 1)
    assert np.mean(rms < threshold) == alike and abs(kappa) < 0.1
    # No pair alike: nothing under the threshold; every pair alike: everything under it. Nothing is calibrated.
    threshold, kappa, alike = ganimator.matched_threshold(rows, rows, window=1, threshold=0.0)
    assert alike == 0.0 and threshold == ganimator.window_pair_costs(rows, rows, 1)[0].min() and np.isnan(kappa)
    threshold, kappa, alike = ganimator.matched_threshold(rows, rows, window=1, threshold=10.0)
    assert alike == 1.0 and threshold > ganimator.window_pair_costs(rows, rows, 1)[0].max() and np.isnan(kappa)


# (clip, threshold, kappa, the span's mean pose held, random replays): the yardsticks' third table, in 2D.
MATCHED = [
    ("Crab-dance-long", 0.268, 0.81, 0.222, 0.950),
    ("Gangnam-Style", 0.197, 0.58, 0.231, 0.982),
    ("Walk-In-Circle", 0.201, 0.64, 1.0, 1.0),
]


@pytest.mark.parametrize("name, threshold, kappa, frozen, replayed", MATCHED)
def test_the_2d_threshold_as_strict_as_ganimator_s_on_the_shared_clips(name, threshold, kappa, frozen, replayed):
    """A 2D dance from a BVH file is scored at the RMS threshold as strict as 2.0 on the same frames' rotations
    (evaluation.single_dance.matched_coverage_setup): what it is and how strict it is on each shared clip."""
    data = DanceDataModule(source=str(shared_path("bvh", f"{name}.bvh")), window=48)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the crab: no human joint map fits
        data.setup("fit")
    training, _ = data.measure_space(data.train_set.features.numpy())  # (T, D)
    heldout, _ = data.measure_space(data.val_set.features.numpy())  # (V, D)
    matched = matched_coverage_setup(data, training, heldout, data.info.fps)
    assert matched["window"] == 30 and matched["rms"] == pytest.approx(threshold, abs=0.001)
    assert matched["kappa"] == pytest.approx(kappa, abs=0.01)
    held = np.repeat(training.mean(axis=0, keepdims=True), 2 * len(training), axis=0)
    assert clip_coverage([held], training, 30, matched["rms"]) == pytest.approx(frozen, abs=0.01)
    replays = replay_clips(training, [2 * len(training)] * 4, 48)
    assert clip_coverage(replays, training, 30, matched["rms"]) == pytest.approx(replayed, abs=0.01)

"""The copy check on the shared dance clips: their held-out windows are never copies, training windows are; and the
coverage yardstick: how much of each dance its own windows, replayed at random, reach."""

import warnings

import numpy as np
import pytest

from conftest import shared_path
from motiondiff.data.dance_windows import DanceDataModule
from motiondiff.metrics.single_motion import (
    COPY_FRACTION,
    clip_coverage,
    nn_distance,
    replay_clips,
    single_motion_report,
    sliding_windows,
)

CLIPS = ("Gangnam-Style.bvh", "Crab-dance-long.bvh")  # the crab has no human joint map: every joint is kept


@pytest.fixture(scope="module", params=CLIPS)
def data(request):
    """A shared clip's data module as the 2D dance experiment cuts it (set up)."""
    module = DanceDataModule(source=str(shared_path("bvh", request.param)), window=48)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the crab's "no joint map fits" warning
        module.setup("fit")
    return module


@pytest.fixture(scope="module")
def clip(data):
    """(training (T, F), held-out span (V, F), info) of the clip's normalised features."""
    return data.train_set.features.double().numpy(), data.val_set.features.double().numpy(), data.info


@pytest.fixture(scope="module")
def descriptors(data):
    """The training span in the 2D descriptors evaluate measures coverage on (measure_space): (T, D)."""
    return data.measure_space(data.train_set.features.numpy())[0].astype(np.float64)


def copy_ratio(generated, clip) -> float:
    """nn distance of the generated clips over that of the held-out span (48-frame windows)."""
    training, heldout, _ = clip
    return nn_distance(generated, training, 48) / nn_distance([heldout], training, 48)


def test_held_out_windows_are_not_copies(clip):
    training, heldout, info = clip
    windows = sliding_windows(heldout, 48)  # (V, 48, F): every held-out window
    report = single_motion_report(windows, training, [heldout], info)
    assert report["copy_ratio"] == pytest.approx(1.0, rel=1e-9) and report["copies_training"] is False
    assert report["heldout_nn_distance"] > 0.2  # real unseen motion of the dancer is not in the training span


def test_training_windows_with_tiny_noise_are_copies(clip):
    training, heldout, info = clip
    rng = np.random.default_rng(0)
    exact = sliding_windows(training, 48, 16)  # (K, 48, F)
    noisy = exact + rng.normal(scale=0.02, size=exact.shape)
    report = single_motion_report(noisy, training, [heldout], info)
    assert report["copies_training"] is True and report["copy_ratio"] < 0.1  # measured: 0.06 on both clips
    assert copy_ratio(list(exact), clip) < 1e-6
    assert copy_ratio(list(exact + rng.normal(scale=0.05, size=exact.shape)), clip) < COPY_FRACTION  # 0.15, 0.16


def test_long_replayed_stretches_are_copies_and_short_collages_are_not(clip):
    """Random training pieces joined with hard cuts: 96-frame pieces replay the dance, 24-frame pieces do not."""
    training = clip[0]
    rng = np.random.default_rng(1)

    def collage(piece: int) -> np.ndarray:
        starts = rng.integers(0, len(training) - piece + 1, size=2 * len(training) // piece)
        return np.concatenate([training[s : s + piece] for s in starts])  # (about 2 T, F)

    assert copy_ratio([collage(96) for _ in range(3)], clip) < COPY_FRACTION  # measured 0.34-0.40
    assert copy_ratio([collage(24) for _ in range(3)], clip) > 0.8  # measured 1.06-1.18


def test_the_dances_own_windows_replayed_at_random_cover_less_than_nine_tenths(descriptors):
    """Few 1 s windows of either dance come back within the coverage threshold elsewhere in it, so twice the span of
    its own exact 48-frame windows in random order covers well under 0.9 (measured 0.78 Gangnam-Style, 0.70 crab):
    the `replay_coverage` evaluate prints beside each run's coverage."""
    replays = replay_clips(descriptors, [2 * len(descriptors)] * 16, 48)
    assert 0.6 < clip_coverage(replays, descriptors, 30) < 0.85

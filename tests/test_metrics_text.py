"""Distribution, retrieval and interval metrics against answers known by hand, closed forms and the `prdc` package."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from motiondiff.core.errors import UserError
from motiondiff.metrics.distribution import frechet_distance, frechet_distance_features, gaussian_statistics, prdc
from motiondiff.metrics.intervals import format_interval, mean_and_interval
from motiondiff.metrics.retrieval import (
    chance_r_precision,
    diversity,
    multimodality,
    r_precision,
    text_motion_score,
)
from motiondiff.metrics.text_motion import (
    Diversity,
    FrechetDistance,
    PrecisionRecallDensityCoverage,
    RetrievalPrecision,
    TextMotionScore,
)


def gaussian_samples(seed: int, n: int, d: int) -> np.ndarray:
    """(n, d) correlated Gaussian samples."""
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(d, d))  # (d, d)
    return rng.normal(size=(n, d)) @ mixing + rng.normal(size=d)


def unit_rows(rows: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length."""
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


# ---------------------------------------------------------------- Frechet distance


def test_gaussian_statistics_are_mean_and_unbiased_covariance():
    rows = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [2.0, 4.0]])
    mean, cov = gaussian_statistics(torch.tensor(rows))
    np.testing.assert_allclose(mean, [1.0, 2.0])
    # deviations are +-1 and +-2, uncorrelated; sum of squares 4 and 16 over n - 1 = 3
    np.testing.assert_allclose(cov, [[4 / 3, 0.0], [0.0, 16 / 3]], atol=1e-12)


def test_frechet_distance_of_a_set_with_itself_is_zero():
    features = gaussian_samples(0, 500, 16)
    _, cov = gaussian_statistics(features)
    assert frechet_distance_features(features, features) < 1e-6 * np.trace(cov)


def test_frechet_distance_of_rank_deficient_sets_with_themselves_is_zero():
    features = gaussian_samples(1, 10, 32)  # 10 points in 32 dims: singular covariance
    _, cov = gaussian_statistics(features)
    assert frechet_distance_features(features, features) < 1e-3 * np.trace(cov)


def test_frechet_distance_hand_picked_2d_gaussians():
    cov = np.array([[2.0, 0.5], [0.5, 1.0]])
    # same covariance: only the squared mean shift remains, 3^2 + 4^2
    assert frechet_distance([0.0, 0.0], cov, [3.0, 4.0], cov) == pytest.approx(25.0, rel=1e-9)
    # I against 4 I, same mean: Tr(I + 4 I - 2 * 2 I) = 1 per dimension
    assert frechet_distance([1.0, 1.0], np.eye(2), [1.0, 1.0], 4 * np.eye(2)) == pytest.approx(2.0, rel=1e-9)
    # zero against identity covariance: a singular product whose root (0) is finite, kept as the reference keeps it
    assert frechet_distance([0.0, 0.0], np.zeros((2, 2)), [0.0, 0.0], np.eye(2)) == pytest.approx(2.0, abs=1e-9)


def reference_frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6) -> float:
    """Guo et al.'s calculate_frechet_distance (MDM's copy), written out again: eps * I only where sqrtm is not
    finite, the imaginary part dropped when the diagonal's is under 1e-3."""
    root = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(root).all():
        offset = eps * np.eye(len(sigma1))
        root = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    assert np.allclose(np.diagonal(root).imag, 0, atol=1e-3)
    difference = mu1 - mu2
    return difference @ difference + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(root.real)


@pytest.mark.parametrize("samples", [3, 10, 200])  # 3 and 10 in 64 dimensions: singular covariances
def test_frechet_distance_is_the_reference_s_with_few_samples_too(samples):
    rng = np.random.default_rng(samples)
    real, fake = rng.normal(size=(300, 64)), rng.normal(0.2, 1.3, size=(samples, 64))
    statistics = [gaussian_statistics(real), gaussian_statistics(fake)]
    expected = reference_frechet_distance(*statistics[0], *statistics[1])
    assert frechet_distance(*statistics[0], *statistics[1]) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_matches_closed_form_of_sampled_gaussians():
    # diagonal covariances: sqrtm(C1 C2) = diag(s1 s2), so FD = |mu1 - mu2|^2 + sum (s1 - s2)^2 = 3 + 1.5 = 4.5
    rng = np.random.default_rng(2)
    mean1, std1 = np.array([0.0, 1.0, -1.0]), np.array([1.0, 2.0, 0.5])
    mean2, std2 = np.array([1.0, 0.0, 0.0]), np.array([2.0, 1.5, 1.0])
    expected = np.sum((mean1 - mean2) ** 2) + np.sum((std1 - std2) ** 2)
    assert expected == pytest.approx(4.5)
    n = 40_000
    real = mean1 + std1 * rng.normal(size=(n, 3))  # (n, 3)
    fake = mean2 + std2 * rng.normal(size=(n, 3))  # (n, 3)
    # sampling noise: each mean is off by ~std / sqrt(n) <= 0.01, moving |dmu|^2 by ~2 * 1 * 0.01 per dimension,
    # each std by ~std / sqrt(2 n) <= 0.007; all together a standard deviation of ~0.04, so 0.15 is ~4 sigma
    assert frechet_distance_features(real, fake) == pytest.approx(expected, abs=0.15)


def test_frechet_distance_is_symmetric():
    real, fake = gaussian_samples(3, 300, 8), gaussian_samples(4, 200, 8)
    forward = frechet_distance_features(real, fake)
    assert forward > 1.0
    assert frechet_distance_features(fake, real) == pytest.approx(forward, rel=1e-8)


# ---------------------------------------------------------------- precision, recall, density, coverage


def test_prdc_hand_computed_points():
    # 1D points on the x axis, k = 1 (the ball of a point reaches strictly less than its nearest neighbour).
    # real 0, 1, 2, 3, 10 -> radii 1, 1, 1, 1, 7.   fake 0.5, 0.6, 5, 20 -> radii 0.1, 0.1, 4.4, 15.
    # precision: 0.5 (in ball of real 0), 0.6 (real 1), 5 (real 10: 5 < 7) yes; 20 (10 from real 10) no -> 3/4.
    # recall: fake 5's ball (< 4.4) holds real 1, 2, 3; fake 20's ball (< 15) holds real 10; real 0 is in
    #   none (0.5 and 0.6 have radius 0.1, 5 is 5 away) -> 4/5.
    # density: balls holding each fake: 0.5 -> real 0, 1; 0.6 -> real 0, 1; 5 -> real 10; 20 -> none;
    #   (2 + 2 + 1 + 0) / (k M = 4) -> 5/4.
    # coverage: nearest fake of real 0 is 0.5 (< 1), of real 1 is 0.6 (< 1), of real 2 is 0.6 (1.4, no),
    #   of real 3 is 5 (2, no), of real 10 is 5 (5 < 7) -> 3/5.
    real = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [10.0, 0.0]])
    fake = np.array([[0.5, 0.0], [0.6, 0.0], [5.0, 0.0], [20.0, 0.0]])
    result = prdc(real, fake, k=1)
    assert result == pytest.approx({"precision": 3 / 4, "recall": 4 / 5, "density": 5 / 4, "coverage": 3 / 5})


def test_prdc_matches_reference_package():
    reference = pytest.importorskip(
        "prdc", reason="prdc is a test-only requirement: pip install -r requirements-test.txt"
    )
    rng = np.random.default_rng(5)
    real = rng.normal(size=(200, 8))
    fake = rng.normal(loc=0.3, scale=1.2, size=(150, 8))
    expected = reference.compute_prdc(real_features=real, fake_features=fake, nearest_k=5)
    result = prdc(real, fake, k=5)
    assert 0.0 < result["precision"] < 1.0 and 0.0 < result["coverage"] < 1.0
    assert result == pytest.approx({name: float(value) for name, value in expected.items()}, abs=1e-12)


def test_prdc_of_identical_sets():
    features = np.random.default_rng(6).normal(size=(100, 4))
    result = prdc(features, torch.tensor(features), k=5)
    assert result["precision"] == result["recall"] == result["coverage"] == 1.0
    assert result["density"] == pytest.approx(1.0, abs=1e-9)  # each ball holds its centre and k - 1 others


def test_prdc_needs_more_points_than_k():
    with pytest.raises(UserError, match=r"k=5.*5 real and 20 fake"):
        prdc(np.zeros((5, 3)), np.ones((20, 3)), k=5)


# ---------------------------------------------------------------- retrieval


def test_r_precision_hand_computed():
    # 1D: texts 0, 1, 2, 3; motions 0, 2.2, 1.1, 3 (one batch of 4).
    # text 0: own motion at 0, nearest -> rank 0.  text 1: own at 1.2; motions 0 (1) and 1.1 (0.1) closer -> rank 2.
    # text 2: own at 0.9; motion 2.2 (0.2) closer -> rank 1.  text 3: own at 0 -> rank 0.
    # R@1 = 2/4, R@2 = 3/4, R@3 = 4/4; MM-Dist = (0 + 1.2 + 0.9 + 0) / 4.
    texts = np.array([[0.0], [1.0], [2.0], [3.0]])
    motions = np.array([[0.0], [2.2], [1.1], [3.0]])
    result = r_precision(texts, motions, batch_size=4)
    assert result == pytest.approx({"R@1": 0.5, "R@2": 0.75, "R@3": 1.0, "MM-Dist": 0.525})


def test_r_precision_counts_ties_against_the_own_motion():
    texts = np.array([[0.0], [10.0]])
    motions = np.array([[1.0], [-1.0]])  # text 0 is 1 away from both motions
    assert r_precision(texts, motions, batch_size=2, top_k=2)["R@1"] == 0.0


def test_r_precision_of_matching_embeddings():
    texts = unit_rows(np.random.default_rng(7).normal(size=(96, 16)))
    assert r_precision(texts, texts) == {"R@1": 1.0, "R@2": 1.0, "R@3": 1.0, "MM-Dist": 0.0}
    noisy = texts + 0.01 * np.random.default_rng(8).normal(size=texts.shape)  # still nearest its own text
    assert r_precision(torch.tensor(texts), torch.tensor(noisy))["R@1"] == 1.0


def test_r_precision_drops_a_trailing_partial_batch():
    texts = unit_rows(np.random.default_rng(9).normal(size=(70, 16)))
    motions = texts.copy()
    motions[64:] = -texts[64:]  # the last 6 items are hopeless but fall in the dropped partial batch
    result = r_precision(texts, motions, batch_size=32)
    assert result["R@1"] == 1.0
    assert result["MM-Dist"] == pytest.approx(6 * 2.0 / 70)  # MM-Dist is over all 70 items
    small = r_precision(texts[64:], motions[64:], batch_size=32)  # 6 < 32 items: one batch of 6
    assert small["R@1"] < 1.0


def test_r_precision_of_random_embeddings_is_chance():
    rng = np.random.default_rng(10)
    texts, motions = unit_rows(rng.normal(size=(3200, 64))), unit_rows(rng.normal(size=(3200, 64)))
    result = r_precision(texts, motions, batch_size=32)
    for k in (1, 2, 3):
        # binomial standard deviation over 3200 texts is <= 0.0052, so 0.015 is ~3 sigma
        assert result[f"R@{k}"] == pytest.approx(chance_r_precision(32, k), abs=0.015)
    assert chance_r_precision(32, 3) == 3 / 32


def test_text_motion_score():
    vectors = unit_rows(np.random.default_rng(11).normal(size=(20, 8)))
    assert text_motion_score(vectors, vectors) == pytest.approx(1.0)
    assert text_motion_score(vectors, -3.0 * vectors) == pytest.approx(-1.0)
    assert text_motion_score([[1.0, 0.0], [1.0, 1.0]], [[0.0, 2.0], [1.0, 0.0]]) == pytest.approx(0.5 * math.sqrt(0.5))


def test_diversity_known_answers():
    assert diversity(np.ones((50, 4))) == 0.0
    assert diversity(np.array([[0.0, 0.0], [3.0, 4.0]])) == pytest.approx(5.0)  # every pair is the two points
    assert diversity(torch.tensor([[0.0, 0.0], [3.0, 4.0]]), num_pairs=7, seed=3) == pytest.approx(5.0)


def test_multimodality_known_answer():
    triangle = np.array([[0.0, 0.0], [5.0, 0.0], [2.5, 2.5 * math.sqrt(3)]])  # equilateral, side 5
    pair = np.array([[0.0, 0.0], [3.0, 0.0], [3.0, 0.0]])  # generations 0 and 1 are 3 apart, 2 repeats 1
    # two captions whose 3 generations are all 5 apart -> 5
    assert multimodality(np.stack([triangle, triangle + 7.0])) == pytest.approx(5.0)
    # caption 0: two generations 3 apart; caption 1: two generations 5 apart -> mean of 3 and 5
    features = np.stack([pair[:2], triangle[:2]])  # (2 captions, 2 generations, 2)
    assert multimodality(features, num_pairs=10, seed=1) == pytest.approx(4.0)
    # three generations with two equal: the distinct pairs are 3 apart in 2 of 3 cases
    assert 0.0 < multimodality(pair[None], num_pairs=3000) == pytest.approx(2.0, abs=0.1)


# ---------------------------------------------------------------- torchmetrics wrappers


def chunks(rows: np.ndarray, sizes=(7, 50, 1, 200)) -> list:
    """Split (N, D) rows into torch chunks of uneven sizes (the last takes the rest)."""
    bounds = np.cumsum(sizes)[:-1]
    return [torch.tensor(part, dtype=torch.float32) for part in np.split(rows, bounds) if len(part)]


def test_frechet_metric_matches_function_and_resets():
    real, fake = gaussian_samples(12, 300, 6).astype(np.float32), gaussian_samples(13, 250, 6).astype(np.float32)
    metric = FrechetDistance(num_features=6)
    for part in chunks(real):
        metric.update(part, real=True)
    for part in chunks(fake):
        metric.update(part, real=False)
    assert metric.compute().item() == pytest.approx(frechet_distance_features(real, fake), rel=1e-8)
    metric.reset()
    metric.update(torch.tensor(fake), real=True)
    metric.update(torch.tensor(real[:100]), real=False)
    assert metric.compute().item() == pytest.approx(frechet_distance_features(fake, real[:100]), rel=1e-8)
    with pytest.raises(UserError, match="batch, 6"):
        metric.update(torch.zeros(3, 5), real=True)


def test_prdc_metric_matches_function_and_resets():
    rng = np.random.default_rng(14)
    real, fake = rng.normal(size=(120, 5)), rng.normal(loc=0.5, size=(90, 5))
    metric = PrecisionRecallDensityCoverage(k=3)
    for part in chunks(fake):
        metric.update(part, real=False)
    for part in chunks(real):
        metric.update(part, real=True)
    expected = prdc(real.astype(np.float32), fake.astype(np.float32), k=3)
    assert {name: value.item() for name, value in metric.compute().items()} == pytest.approx(expected, abs=1e-12)
    metric.reset()
    metric.update(torch.tensor(real), real=True)
    metric.update(torch.tensor(real), real=False)
    assert metric.compute()["coverage"].item() == 1.0


def test_retrieval_metric_matches_function_and_resets():
    rng = np.random.default_rng(15)
    texts = unit_rows(rng.normal(size=(100, 12)))
    motions = unit_rows(texts + 0.3 * rng.normal(size=texts.shape))
    metric = RetrievalPrecision(batch_size=16, top_k=3)
    for text_part, motion_part in zip(chunks(texts, (5, 40, 55)), chunks(motions, (5, 40, 55))):
        metric.update(text_part, motion_part)
    expected = r_precision(texts.astype(np.float32), motions.astype(np.float32), batch_size=16, top_k=3)
    assert 0.0 < expected["R@1"] < 1.0
    assert {name: value.item() for name, value in metric.compute().items()} == pytest.approx(expected, abs=1e-12)
    metric.reset()
    metric.update(torch.tensor(texts), torch.tensor(texts))
    assert metric.compute()["R@1"].item() == 1.0


def test_text_motion_score_metric_matches_function_and_resets():
    rng = np.random.default_rng(16)
    texts, motions = rng.normal(size=(64, 10)), rng.normal(size=(64, 10)) + 1.0
    metric = TextMotionScore()
    for text_part, motion_part in zip(chunks(texts, (10, 54)), chunks(motions, (10, 54))):
        metric.update(text_part, motion_part)
    expected = text_motion_score(texts.astype(np.float32), motions.astype(np.float32))
    assert metric.compute().item() == pytest.approx(expected, abs=1e-9)
    metric.reset()
    metric.update(torch.tensor(texts), torch.tensor(texts))
    assert metric.compute().item() == pytest.approx(1.0)


def test_diversity_metric_matches_function_and_resets():
    features = np.random.default_rng(17).normal(size=(80, 6))
    metric = Diversity(num_pairs=300, seed=4)
    for part in chunks(features, (30, 50)):
        metric.update(part)
    expected = diversity(features.astype(np.float32), num_pairs=300, seed=4)
    assert metric.compute().item() == pytest.approx(expected, rel=1e-12)
    metric.reset()
    metric.update(torch.ones(10, 6))
    assert metric.compute().item() == 0.0


# ---------------------------------------------------------------- intervals


def test_mean_and_interval_hand_value():
    mean, half_width = mean_and_interval([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert half_width == pytest.approx(4.302653 * 1.0 / math.sqrt(3), rel=1e-6)  # t_{0.975, 2} * std 1 / sqrt(3)
    mean, half_width = mean_and_interval([0.4])
    assert mean == 0.4 and math.isnan(half_width)


def test_format_interval():
    assert format_interval(0.5123, 0.0211) == "0.512 ± 0.021"
    assert format_interval(12.0, math.nan, digits=1) == "12.0"

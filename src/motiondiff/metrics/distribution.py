"""How close a set of generated feature vectors is to the real ones, as distributions.

`frechet_distance` is the FID formula of Heusel et al. 2017 applied to motion features (Guo et al.
2022 call it FID); `prdc` gives precision, recall, density and coverage of Naeem et al. 2020.
Everything is computed in float64 numpy; inputs may be numpy arrays or torch tensors.
"""

import warnings

import numpy as np
import scipy.linalg
from scipy.spatial.distance import cdist

from motiondiff.core.errors import UserError


def as_float64(values) -> np.ndarray:
    """A float64 numpy copy of a numpy array, torch tensor or nested list."""
    if hasattr(values, "detach"):  # a torch tensor
        values = values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64)


def as_feature_rows(features, what: str = "features") -> np.ndarray:
    """Features as a float64 (N, D) matrix; a UserError names any other shape."""
    rows = as_float64(features)
    if rows.ndim != 2:
        raise UserError(f"{what} must be a (N, D) matrix of feature vectors, got shape {rows.shape}.")
    return rows


def gaussian_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased sample covariance (D, D) of the rows of (N, D) features, N >= 2."""
    rows = as_feature_rows(features)  # (N, D)
    assert len(rows) >= 2, f"a covariance needs at least 2 feature vectors, got {len(rows)}"
    mean = rows.mean(axis=0)  # (D,)
    cov = np.cov(rows, rowvar=False, ddof=1).reshape(rows.shape[1], rows.shape[1])  # (D, D)
    return mean, cov


def product_sqrtm(cov1: np.ndarray, cov2: np.ndarray) -> np.ndarray | None:
    """sqrtm(cov1 @ cov2), or None when the root is not finite. A singular product (fewer samples than features)
    keeps its root when that is finite, as the reference's calculate_frechet_distance keeps it (its eps only where
    sqrtm gives inf or nan), so small evaluations give the reference's numbers too."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)  # "matrix is singular": the root may be fine
        try:
            root = scipy.linalg.sqrtm(cov1 @ cov2)  # (D, D), possibly complex
        except (np.linalg.LinAlgError, ValueError):
            return None
    return root if np.isfinite(root).all() else None


def frechet_distance(mean1, cov1, mean2, cov2, eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + Tr(C1 + C2 - 2 sqrtm(C1 C2)); both covariances get eps * I where sqrtm is not finite."""
    mean1, mean2 = as_float64(mean1), as_float64(mean2)  # (D,)
    cov1, cov2 = np.atleast_2d(as_float64(cov1)), np.atleast_2d(as_float64(cov2))  # (D, D)
    assert mean1.shape == mean2.shape and cov1.shape == cov2.shape == (mean1.size, mean1.size), (
        mean1.shape,
        mean2.shape,
        cov1.shape,
        cov2.shape,
    )
    root = product_sqrtm(cov1, cov2)
    if root is None:
        offset = eps * np.eye(len(cov1))  # (D, D)
        root = product_sqrtm(cov1 + offset, cov2 + offset)
        assert root is not None, "sqrtm(C1 C2) is not finite even after adding eps * I to both covariances"
    if np.iscomplexobj(root):  # the reference's test: the diagonal (the trace) is real to 1e-3
        imaginary = np.abs(np.diagonal(root).imag).max()
        assert imaginary <= 1e-3, f"sqrtm(C1 C2) has an imaginary part of {imaginary} on its diagonal"
        root = root.real
    difference = mean1 - mean2  # (D,)
    distance = difference @ difference + np.trace(cov1) + np.trace(cov2) - 2.0 * np.trace(root)
    scale = np.trace(cov1) + np.trace(cov2) + difference @ difference
    assert distance >= -1e-6 * max(scale, 1.0), f"Frechet distance {distance} is clearly negative"
    return float(max(distance, 0.0))


def frechet_distance_features(real, fake) -> float:
    """Frechet distance between Gaussians fitted to real (N, D) and fake (M, D) features."""
    return frechet_distance(*gaussian_statistics(real), *gaussian_statistics(fake))


def kth_neighbour_distances(features: np.ndarray, k: int) -> np.ndarray:
    """Distance from each row of (N, D) features to its k-th nearest other row (N,)."""
    distances = cdist(features, features)  # (N, N)
    np.fill_diagonal(distances, np.inf)  # a point is not its own neighbour
    return np.partition(distances, k - 1, axis=1)[:, k - 1]


def prdc(real, fake, k: int = 5, course_recall: bool = False) -> dict:
    """Precision, recall, density and coverage of fake (M, D) against real (N, D) features (Naeem et al. 2020).

    A ball around a point reaches (strictly) less than its k-th nearest neighbour in its own set, as in
    the authors' code. precision: fraction of fake inside some real ball; recall: fraction of real
    inside some fake ball; density: fake-in-real-ball memberships / (k M); coverage: fraction of real
    points whose nearest fake lies inside their own ball. course_recall: recall as the course framework
    computes it, real i inside the ball of fake i's radius around any fake (needs N == M; not the published formula).
    """
    real, fake = as_feature_rows(real, "real features"), as_feature_rows(fake, "fake features")  # (N, D), (M, D)
    if len(real) <= k or len(fake) <= k:
        raise UserError(
            f"PRDC with k={k} needs more than {k} real and fake feature vectors, got {len(real)} real and "
            f"{len(fake)} fake; use more samples or a smaller k."
        )
    real_radii = kth_neighbour_distances(real, k)  # (N,)
    fake_radii = kth_neighbour_distances(fake, k)  # (M,)
    real_to_fake = cdist(real, fake)  # (N, M)
    fake_in_real_ball = real_to_fake < real_radii[:, None]  # (N, M)
    if course_recall and len(real) != len(fake):
        raise UserError(
            f"the course's recall pairs real and fake by index: it needs as many of each, got {len(real)}, {len(fake)}."
        )
    real_in_fake_ball = real_to_fake < (fake_radii[:, None] if course_recall else fake_radii[None, :])  # (N, M)
    return {
        "precision": float(fake_in_real_ball.any(axis=0).mean()),
        "recall": float(real_in_fake_ball.any(axis=1).mean()),
        "density": float(fake_in_real_ball.sum() / (k * len(fake))),
        "coverage": float((real_to_fake.min(axis=1) < real_radii).mean()),
    }

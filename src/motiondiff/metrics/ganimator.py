"""GANimator's single-motion measures in its own feature space and units, for 3D dances (published_report).

The project's measures (metrics.single_motion) compare root-relative joint positions by RMS with a threshold of
0.1; GANimator (Li et al., SIGGRAPH 2022; its evaluate.py and evaluations/, which SinMDM's Mixamo benchmark runs)
compares **rotations**. Its feature per frame is every joint's local rotation as the first two rows of its matrix
(6 numbers; the root's rotation whole, heading included), concatenated, unnormalised; two frames differ by the
Euclidean norm of the difference and two windows by the mean of their frames' norms. Then:

- coverage: the share of the training sequence's 30-frame windows (starts 0 to T - 31: its loop leaves out the last
  one) whose nearest window of one generated clip costs under 2.0; per clip, averaged over clips;
- local diversity: the mean over a clip's 15-frame windows (starts 0 to L - 16) of the cost to the nearest training
  window; averaged over clips;
- global diversity: the cost per frame of rebuilding a clip from contiguous training segments of at least 30 frames
  (the same dynamic programme as single_motion.patched_reconstruction_cost, on these frame costs).

What differs from GANimator's own numbers:
- the reference: GANimator scores against the whole file; this against the training span (the file's first 85%,
  the rest held out for the copy check), so coverage counts that span's windows;
- the joints: GANimator's skeleton list (for Mixamo characters 24 joints, no fingers, eyes or head top) against the
  joints the model generates (Gangnam-Style: those 24 and HeadTop_End and the eyes, which do not move in the file;
  the crab: the same 56);
- GANimator's features also hold 6 channels per foot-contact joint (in the data the contact label and five zeros;
  in its samples free outputs), which this model does not generate;
- GANimator scores its generator's 6D output as it comes; this decodes to rotation matrices first, and its root
  heading is integrated from per-frame turns from the source's opening, where GANimator's generator gives the
  root's orientation directly, so a drifting heading costs here in the root's rows;
- windows: GANimator halves a file's frame rate once when its frame time is under 0.0084 s and once more when it
  is then under 0.017 s (120 fps becomes 30, 60 becomes 30, 240 becomes 60; 24-50 fps stay) and counts 30, 15 and
  30 frames; this counts 1 s, 0.5 s and 1 s at the
  data's fps (the 3D dance resamples to 30 by default: the same frames);
- GANimator prints coverage in percent; this reports the fraction.

How strict it is, on the shared clips' training spans (tests/test_ganimator_measures.py checks the first rows): a
clip holding the span's mean pose covers 0.02 of the crab's windows, 0.21 of Gangnam-Style's and 1.0 of the walk's
(whose joints turn little: a held-out walk window costs 0.77); the dance's own 48-frame windows replayed at random
cover 0.97, 1.0 and 1.0. So 2.0 is far looser than the project's 0.1, under which those replays cover 0.69, 0.92 and
1.0, and it cannot tell a walk from a figure standing still.

2D dances have no rotations. For one read from a BVH file, `matched_threshold` is the project's own calibration of
2.0's strictness on its 2D descriptors, from the same frames' rotations: of the clip's pairs of 1 s windows at least
1 s apart, the RMS threshold counts as many alike as 2.0 does (0.197 Gangnam-Style, 0.268 Crab-dance-long, 0.201
Walk-In-Circle; Cohen's kappa of the two decisions 0.58, 0.81 and 0.64: moderate to good agreement), and the
evaluation reports the 2D coverage at it. It matches a count of pairs, not each decision: it is looser than 2.0 on
the crab's held pose (0.22 of the dance covered against 0.02), and it counts every training window where GANimator's
loop leaves out the last.
"""

from typing import Sequence

import numpy as np

from motiondiff.metrics.single_motion import diagonal_sums, frame_distances, patched_reconstruction_cost

COVERAGE_SECONDS, LOCAL_SECONDS, MIN_SEGMENT_SECONDS = 1.0, 0.5, 1.0  # 30, 15 and 30 frames at 30 fps
COVERAGE_THRESHOLD = 2.0  # evaluations/perwindow_nn.coverage's default

PUBLISHED_KEYS = ("ganimator_coverage", "ganimator_local_diversity", "ganimator_global_diversity")


def rotation_rows(rotations: np.ndarray) -> np.ndarray:
    """Local rotation matrices (T, J, 3, 3) -> GANimator's per-frame features (T, 6J): each matrix's first two rows."""
    rotations = np.asarray(rotations, dtype=np.float64)
    assert rotations.ndim == 4 and rotations.shape[-2:] == (3, 3), rotations.shape
    return rotations[..., :2, :].reshape(len(rotations), -1)


def frame_norms(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance between every frame of a (A, F) and every frame of b (B, F): (A, B), the RMS of
    single_motion.frame_distances times sqrt(F)."""
    return frame_distances(a, b) * np.sqrt(a.shape[1])


def nearest_window_costs(queries: np.ndarray, references: np.ndarray, window: int) -> np.ndarray:
    """(A - window + 1,): for each `window`-frame window of queries (A, F), the least mean frame norm to a window of
    references (B, F)."""
    assert 1 <= window <= min(len(queries), len(references)), (window, len(queries), len(references))
    return diagonal_sums(frame_norms(queries, references), window).min(axis=1) / window


def coverage(clip: np.ndarray, training: np.ndarray, window: int = 30, threshold: float = COVERAGE_THRESHOLD) -> float:
    """The share of training windows (starts 0 to T - window - 1) that some window of `clip` matches under threshold;
    nan when the clip is shorter than the window or the training span not longer than it."""
    if len(clip) < window or len(training) <= window:
        return float("nan")
    return float(np.mean(nearest_window_costs(training, clip, window)[:-1] < threshold))


def local_diversity(clip: np.ndarray, training: np.ndarray, window: int = 15) -> float:
    """Mean cost of the clip's windows (starts 0 to L - window - 1) to their nearest training window; nan when the
    clip is not longer than the window or the training span shorter than it."""
    if len(clip) <= window or len(training) < window:
        return float("nan")
    return float(np.mean(nearest_window_costs(clip, training, window)[:-1]))


def global_diversity(clip: np.ndarray, training: np.ndarray, min_segment: int = 30) -> float:
    """Cost per frame of the best rebuilding of `clip` from contiguous training segments >= min_segment frames; nan
    when the clip or the training span is shorter than one segment (GANimator's programme finds no rebuilding)."""
    if min(len(clip), len(training)) < min_segment:
        return float("nan")
    return patched_reconstruction_cost(clip, training, min_segment, frame_cost=frame_norms)


def window_costs(descriptors: np.ndarray, rows: np.ndarray, window: int) -> tuple:
    """Between every two `window`-frame windows of one clip (N = T - window + 1 starts): their RMS distance on the
    descriptors (T, D) and GANimator's cost on the rotation rows (T, 6J) of the same frames, two (N, N) arrays."""
    assert len(descriptors) == len(rows) and 1 <= window <= len(rows), (len(descriptors), len(rows), window)
    rms = np.sqrt(diagonal_sums(frame_distances(descriptors, descriptors) ** 2, window) / window)  # (N, N)
    return rms, diagonal_sums(frame_norms(rows, rows), window) / window  # (N, N) each


def window_pair_costs(descriptors: np.ndarray, rows: np.ndarray, window: int) -> tuple:
    """`window_costs` of every pair of windows at least a window apart (i < j), two (P,) arrays."""
    assert 1 <= window <= len(rows) // 2, (len(rows), window)
    rms, cost = window_costs(descriptors, rows, window)  # (N, N) each
    apart = np.triu(np.ones(rms.shape, dtype=bool), k=window)  # (N, N): j >= i + window
    return rms[apart], cost[apart]


def matched_threshold(descriptors: np.ndarray, rows: np.ndarray, window: int, threshold: float = COVERAGE_THRESHOLD):
    """The RMS threshold on descriptors (T, D) calibrated to GANimator's `threshold` on the rotation rows (T, 6J) of
    the same frames: of the clip's window pairs at least a window apart, it counts as alike as many as GANimator's
    cost puts under `threshold` (midway between two sorted distances; fewer where distances tie at the cut).

    Returns (threshold, Cohen's kappa of the two decisions over those pairs, the share of pairs GANimator counts
    alike). Where it counts none or all of them, nothing is calibrated: the threshold sits below the least or above
    the greatest distance and kappa is nan."""
    rms, cost = window_pair_costs(np.asarray(descriptors, np.float64), np.asarray(rows, np.float64), window)
    alike = cost < threshold  # (P,)
    count, ordered = int(alike.sum()), np.sort(rms)
    if count in (0, len(ordered)):
        matched = float(ordered[0] if count == 0 else np.nextafter(ordered[-1], np.inf))
        return matched, float("nan"), float(alike.mean())
    matched = float((ordered[count - 1] + ordered[count]) / 2)
    decided = rms < matched
    agree = float(np.mean(decided == alike))
    chance = decided.mean() * alike.mean() + (1 - decided.mean()) * (1 - alike.mean())
    return matched, float((agree - chance) / (1 - chance)), float(alike.mean())


def published_windows(fps: float) -> dict:
    """The windows in frames at `fps`: coverage 1 s, local diversity 0.5 s, global diversity segments of >= 1 s
    (GANimator's 30, 15 and 30 frames at 30 fps)."""
    seconds = {"coverage_window": COVERAGE_SECONDS, "local_window": LOCAL_SECONDS, "min_segment": MIN_SEGMENT_SECONDS}
    return {name: max(1, int(round(value * fps))) for name, value in seconds.items()}


def published_report(clips: Sequence[np.ndarray], training: np.ndarray, fps: float) -> dict:
    """PUBLISHED_KEYS of generated clips K x (T_k, 6J) against the training span (T, 6J), rotation_rows features,
    each measure per clip and averaged over the clips (nan where a clip is too short for its window), the windows
    `published_windows(fps)`."""
    clips = [np.asarray(clip, dtype=np.float64) for clip in clips]
    training = np.asarray(training, dtype=np.float64)
    assert clips and all(clip.ndim == 2 and clip.shape[1] == training.shape[1] for clip in clips)
    windows = published_windows(fps)
    return {
        "ganimator_coverage": float(np.mean([coverage(c, training, windows["coverage_window"]) for c in clips])),
        "ganimator_local_diversity": float(
            np.mean([local_diversity(c, training, windows["local_window"]) for c in clips])
        ),
        "ganimator_global_diversity": float(
            np.mean([global_diversity(c, training, windows["min_segment"]) for c in clips])
        ),
    }

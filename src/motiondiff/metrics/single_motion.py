"""Measures for a model trained on ONE motion: does it reproduce the dance, vary it, or copy it?

The measures follow the single-motion literature: coverage, local and global diversity from
GANimator (Li et al., SIGGRAPH 2022) and inter/intra diversity from SinMDM (Raab et al.
2023, ICLR 2024; the GANimator benchmark of its evaluation). Inputs are descriptor sequences (frames,
feats), e.g. the dance's normalised keypoints flattened per frame; `generated` is a list of clips
(T_k, feats) or an array (K, T, feats). As GANimator's evaluate.py, the report scores coverage clip
by clip and averages over the clips (clips as long as the evaluation protocol makes them).

One distance everywhere: two windows of `w` frames are compared by their RMS difference per
coordinate, sqrt(mean over frames and feats of the squared difference) — the normalisation of
`skeleton.nearest_window_distance`, so a threshold means the same for every window length and
skeleton. (GANimator averages per-frame Euclidean norms of unnormalised rotation features, a far
looser yardstick; metrics.ganimator measures 3D dances that way too, for numbers comparable to the
papers'.) On normalised dance
features (one shift and one scale fitted on the training span, coordinates with std 1) a distance
of 0.1 is a tenth of the dance's spread, about 4 cm for the procedural dance.

Default windows are durations, turned into frames with the data's fps (at the default 30 fps:
coverage 30 frames, local diversity 15, global diversity segments of at least 30, inter/intra
diversity 15, copy check the training window, 48). `resolve_windows` states the frames used and
caps each at the shortest generated or held-out clip.

Descriptors and positions are separate inputs: coverage, the diversities and the copy check compare
descriptors (T, D) (2D: the normalised keypoints; 3D: root-relative, facing-aligned joint positions
in one scale); bone lengths, jitter and foot skating measure positions (T, J, dims) (3D: global
joints by forward kinematics), by default the descriptors un-flattened.

Coverage has two companions. `pooled_coverage` is the share of training windows that any of the clips reproduces:
below 1, parts of the dance are never made at all; near 1 with a low per-clip coverage, each clip dances only part
of it. `replay_coverage` is the coverage of clips made of the dance's own exact training windows (the copy window,
48 frames) in random order, as long as the generated clips: how far so much motion reaches without a plan, which
depends on how often the dance repeats itself. Measured on the shared clips' training spans (clips twice the span,
16 replays): Gangnam-Style 0.78 in 2D and 0.92 in 3D, Crab-dance-long 0.70 and 0.69, Walk-In-Circle 0.94 and 1.0;
6-7% of the crab's 1 s windows, 12% (2D) and 46% (3D) of Gangnam-Style's, recur within the threshold elsewhere in
the span. A per-clip coverage of 0.9 on the crab needs each clip to pass through nearly every move of the dance once.

The copy check compares generated motion with real motion the model never saw: the dance's held-out
windows. `copy_ratio` is the mean distance of the generated copy-window windows (stride 1) to their
nearest training window over the same for the held-out windows; the held-out windows score 1 by
construction, and `copies_training` is copy_ratio < COPY_FRACTION = 0.5. Measured with 48-frame
windows on the 2D dance's descriptors (DanceDataModule.measure_space: keypoints relative to the root
joint; tests/test_copy_check.py checks the first rows), for Gangnam-Style / Crab-dance-long / the
procedural dance / Walk-In-Circle:
- exact training windows: 0 / 0 / 0 / 0;
- training windows + Gaussian noise of 0.05 (normalised units): 0.22 / 0.16 / 0.43 / 0.74;
  of 0.1: 0.44 / 0.32 / 0.86 / 1.5;
- collages of random training pieces (a dance replayed in stretches, hard cuts): 96-frame pieces
  0.29 / 0.29 / 0.48 / 0.55; 48-frame pieces 0.58 / 0.63 / 1.1 / 1.1.
Half the held-out distance flags exact and lightly noised copies and long replayed stretches, and
leaves a factor of two below unseen real motion. On a clip that loops (the walk's held-out end repeats its
cycle almost exactly) unseen motion is itself near the training span, so only copies far closer than that
are flagged: there, copying and dancing the loop cannot be told apart. The former yardstick (the training
windows' distance to their nearest non-overlapping training window) flagged the held-out end of the walk
in the absolute keypoints: 0.116 against 0.5 x 0.469.

`frozen_share` catches what the jitter ratio hides: a chain of windows that settles into a pose and holds it (the
acceleration of a still figure is low, so a frozen stretch pulls the jitter ratio down, not up). It is the share of
the clips' 1 s windows (stride 1) whose mean joint speed is below FROZEN_FRACTION = 0.5 of the slowest 1 s window of
the training span: the dance itself scores 0, and a dance that holds still for a second somewhere allows as much.
On the 2D walk (its slowest stretch, facing the camera at a turn, moves about a fifth as fast as its fastest) the
chained walks of a run trained with `network.context=true` stand still for seconds in their video: frozen share 0.28
(0.26-0.30 over 3 replications) with a jitter ratio of 1.10; those of the plain run score 0.05 (jitter 2.14).

SIFID (SinMDM's text-motion benchmark) is left out: it needs a learned motion encoder, and the
single dance has none.
"""

from typing import Optional, Sequence, Union

import numpy as np

from motiondiff.core.errors import UserError
from motiondiff.data.info import MotionData
from motiondiff.data.kinematics.contacts import contacts_of
from motiondiff.data.kinematics.skeleton import bone_lengths
from motiondiff.metrics.skeleton import bone_length_error, foot_skating, mean_acceleration, nearest_window_distance

# GANimator: coverage windows of 30 frames at 30 fps (1 s); local diversity windows and SinMDM's
# inter/intra windows of 15 frames (0.5 s); global-diversity segments of at least 30 frames (1 s).
COVERAGE_SECONDS = 1.0
LOCAL_SECONDS = 0.5
DIVERSITY_SECONDS = 0.5
MIN_SEGMENT_SECONDS = 1.0
# A training window counts as reproduced when a generated window lies within 0.1 (RMS, normalised
# units) of it. Measured on the procedural dance with 30-frame windows: 0.105 is the median distance
# of a training window to its nearest non-overlapping repeat, 0.12 the median distance of a held-out
# window to the training span, 0.38 the median distance between two unrelated windows.
COVERAGE_THRESHOLD = 0.1
# Replay clips (the coverage yardstick): exact training windows of the copy window's length, joined with hard cuts,
# REPLAYS per generated clip, from a fixed seed so that every evaluation of a clip states the same value.
REPLAYS = 4
REPLAY_SEED = 0
# Generated clips copy the dance when their mean nearest-training distance is below half of the held-out
# windows' (copy_ratio < 0.5; the measurements in the module docstring).
COPY_FRACTION = 0.5
# A generated 1 s window is frozen when its mean joint speed is below this fraction of the training span's slowest.
FROZEN_FRACTION = 0.5

Clips = Union[np.ndarray, Sequence[np.ndarray]]  # (K, T, F) or K x (T_k, F)

REPORT_KEYS = (
    "coverage",  # per clip, the share of training windows it reproduces, averaged over clips (higher: more dance)
    "pooled_coverage",  # the share of training windows some clip reproduces (below 1: parts of the dance never made)
    "replay_coverage",  # `coverage` of random exact training windows replayed as clips of the same lengths
    "local_diversity",  # mean distance of generated windows to their nearest training window (0: local copies)
    "global_diversity",  # mean per-frame cost of rebuilding a clip from training segments (0: a collage of the dance)
    "inter_diversity",  # mean distance between different clips at the same frames (0: all clips alike); nan for 1 clip
    "intra_diversity",  # mean distance between non-overlapping windows of one clip (0: frozen/looping); nan: no pairs
    "bone_length_error",  # mean relative error of mean bone lengths against the training data's
    "jitter_ratio",  # mean acceleration of the generated positions / that of the training positions (1: as smooth)
    "frozen_share",  # share of generated 1 s windows slower than FROZEN_FRACTION x the dance's slowest (0: never still)
    "foot_skating_ratio",  # foot speed while in contact, generated / training (3D only; nan in 2D)
    "nn_distance_to_training",  # mean distance of generated copy-window windows to their nearest training window
    "heldout_nn_distance",  # the same for the dance's held-out windows: what unseen real motion scores
    "copy_ratio",  # nn_distance_to_training / heldout_nn_distance (1: as far from the training span as real motion)
    "copies_training",  # copy_ratio < COPY_FRACTION
)


def sliding_windows(sequence: np.ndarray, size: int, stride: int = 1) -> np.ndarray:
    """Every `size`-frame window of a (T, F) sequence taken every `stride` frames: a (W, size, F) view, no copy."""
    if not 1 <= size <= len(sequence):
        raise UserError(
            f"a window of {size} frames does not fit a sequence of {len(sequence)} frames; "
            f"use a window of 1 to {len(sequence)} frames."
        )
    assert stride >= 1
    windows = np.lib.stride_tricks.sliding_window_view(sequence, size, axis=0)  # (T - size + 1, F, size)
    return windows.transpose(0, 2, 1)[::stride]  # (W, size, F)


def as_clips(generated: Clips) -> list:
    """A list of float64 (T_k, F) clips from a (K, T, F) array or a list of (T_k, F) arrays."""
    clips = [np.asarray(clip, dtype=np.float64) for clip in generated]
    assert clips and all(clip.ndim == 2 for clip in clips), "generated must be (K, T, F) or a list of (T_k, F)"
    return clips


def all_windows(clips: list, size: int) -> np.ndarray:
    """Every `size`-frame window (stride 1) of every clip, stacked: (W, size, F)."""
    return np.concatenate([sliding_windows(clip, size) for clip in clips])


def coverage(generated: Clips, training: np.ndarray, window: int, threshold: float = COVERAGE_THRESHOLD) -> float:
    """Fraction of training windows (stride 1) with a generated window (any clip, stride 1) closer than `threshold`.

    GANimator's coverage with this project's RMS distance and threshold, over all windows (GANimator leaves each
    sequence's last one out); the evaluation scores clips one by one (a list of one clip), pooling applies when
    several are given.
    """
    training_windows = sliding_windows(np.asarray(training, dtype=np.float64), window)  # (Wt, w, F)
    nearest = nearest_window_distance(training_windows, all_windows(as_clips(generated), window))  # (Wt,)
    return float(np.mean(nearest < threshold))


def replay_clips(training: np.ndarray, lengths: Sequence[int], piece: int, seed: int = REPLAY_SEED) -> list:
    """Clips of the given lengths, each random exact `piece`-frame windows of `training` (T, F) joined with hard cuts.

    What replaying the dance's own windows in random order gives: a model that had memorised every training window
    and chained them at random. Its coverage says how much of the dance so much motion reaches without a plan, which
    depends on how repetitive the dance is (a dance that repeats its moves is covered by few windows).
    """
    assert 1 <= piece <= len(training), (piece, len(training))
    rng = np.random.default_rng(seed)
    clips = []
    for length in lengths:
        starts = rng.integers(0, len(training) - piece + 1, size=-(-int(length) // piece))
        clips.append(np.concatenate([training[s : s + piece] for s in starts])[:length])  # (length, F)
    return clips


def local_diversity(generated: Clips, training: np.ndarray, window: int = 15) -> float:
    """GANimator's local diversity: mean distance of each generated window (stride 1) to its nearest training window."""
    training_windows = sliding_windows(np.asarray(training, dtype=np.float64), window)  # (Wt, w, F)
    return float(nearest_window_distance(all_windows(as_clips(generated), window), training_windows).mean())


def frame_distances(a: np.ndarray, b: np.ndarray, chunk_values: int = 4_000_000) -> np.ndarray:
    """RMS difference per coordinate between every frame of a (A, F) and every frame of b (B, F): (A, B).

    Differences are taken directly (exact zeros for copied frames), a block of rows at a time.
    """
    rows = max(1, chunk_values // max(1, b.size))
    blocks = [
        np.sqrt(((a[i : i + rows, None] - b[None]) ** 2).mean(-1)) for i in range(0, len(a), rows)
    ]  # (rows, B) each
    return np.concatenate(blocks)


def diagonal_sums(cost: np.ndarray, length: int) -> np.ndarray:
    """sums[i, j] = cost[i, j] + cost[i+1, j+1] + ... (`length` terms); (A, B) -> (A - length + 1, B - length + 1)."""
    rows, cols = cost.shape
    cumulative = np.zeros(
        (rows + 1, cols + 1)
    )  # cumulative[i, j] = sum of cost along the diagonal ending at (i-1, j-1)
    for i in range(rows):
        cumulative[i + 1, 1:] = cumulative[i, :-1] + cost[i]
    return cumulative[length:, length:] - cumulative[: rows - length + 1, : cols - length + 1]


def patched_reconstruction_cost(
    clip: np.ndarray, training: np.ndarray, min_segment: int, frame_cost=frame_distances
) -> float:
    """Mean per-frame distance of `clip` (T, F) to the best collage of contiguous training segments >= min_segment long.

    The clip is cut into consecutive segments, each at least `min_segment` frames long (the whole clip if it is
    shorter), and each segment is replaced by the contiguous training segment of the same length that matches it
    best; the cost is the sum of per-frame distances (`frame_cost` (T, F), (Tt, F) -> (T, Tt); by default
    `frame_distances`) over the clip, minimised over all cuts and matches, divided by T. Dynamic programming over
    (clip frame, training frame) in O(T * T_train): ending[j] is the best cost of the clip so far whose last segment
    ends on training frame j - 1 and is already `min_segment` long; it either extends by one frame along the
    diagonal or starts a fresh segment of exactly `min_segment` frames after the best cut `min_segment` frames back
    (longer segments are such a start plus extensions).
    """
    length, train_length = len(clip), len(training)
    min_segment = min(min_segment, length, train_length)
    cost = frame_cost(clip, training)  # (T, Tt)
    fresh = diagonal_sums(cost, min_segment)  # (T - m + 1, Tt - m + 1): a whole segment starting at (i, j)
    best_cut = np.full(length + 1, np.inf)  # best_cut[i]: the first i clip frames rebuilt, segments complete
    best_cut[0] = 0.0
    ending = np.full(train_length + 1, np.inf)  # over training end positions 0..Tt
    for i in range(min_segment, length + 1):
        extend = np.full(train_length + 1, np.inf)
        extend[1:] = ending[:-1] + cost[i - 1]  # (Tt,) one more frame on the diagonal
        start = np.full(train_length + 1, np.inf)
        start[min_segment:] = best_cut[i - min_segment] + fresh[i - min_segment]  # (Tt - m + 1,)
        ending = np.minimum(extend, start)
        best_cut[i] = ending.min()
    return float(best_cut[length] / length)  # inf when no cut into `min_segment` pieces fits (GANimator's kernel too)


def global_diversity(generated: Clips, training: np.ndarray, min_segment: int = 30) -> float:
    """GANimator's global diversity: `patched_reconstruction_cost` of each clip against the training sequence, averaged.

    0 when every clip is a collage of training pieces at least `min_segment` frames long; GANimator uses 30 frames
    (1 s at 30 fps). Clips shorter than `min_segment` are matched as one segment. inf, as GANimator's, when a clip
    cannot be cut into such pieces (a clip a little longer than a short training sequence).
    """
    training = np.asarray(training, dtype=np.float64)
    return float(np.mean([patched_reconstruction_cost(clip, training, min_segment) for clip in as_clips(generated)]))


def window_rms(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """RMS difference per coordinate of windows a and b (..., window, F), pair by pair: (...)."""
    assert a.shape == b.shape
    return np.sqrt(np.mean((a - b) ** 2, axis=(-2, -1)))


def tiles(clip: np.ndarray, window: int) -> np.ndarray:
    """Non-overlapping `window`-frame windows from frame 0 (leftover tail dropped): (clip_len // window, window, F)."""
    count = len(clip) // window
    return clip[: count * window].reshape(count, window, clip.shape[1])


def inter_diversity(generated: Clips, window: int = 15) -> float:
    """Inter diversity after SinMDM's: mean distance between different clips at the same frames.

    For every pair of different clips, both are cut into non-overlapping `window`-frame tiles from frame 0
    and the tiles at the same position (over their common length) are compared (`window_rms`); the mean is
    over all such tile pairs. Not in SinMDM's units: SinMDM divides the Frobenius norm of two whole clips'
    difference by their frame count (about sqrt(F / T) times this RMS, so it shrinks with clip length), on rotation
    features, each clip against the previous one. nan for a single clip.
    """
    clips = as_clips(generated)
    distances = []
    for k in range(len(clips)):
        for other in range(k + 1, len(clips)):
            a, b = tiles(clips[k], window), tiles(clips[other], window)
            count = min(len(a), len(b))
            distances += list(window_rms(a[:count], b[:count]))  # (count,)
    return float(np.mean(distances)) if distances else float("nan")


def intra_diversity(generated: Clips, window: int = 15) -> float:
    """SinMDM's intra diversity: mean distance between non-overlapping windows inside the same clip.

    Each clip is cut into non-overlapping `window`-frame tiles from frame 0; all pairs of different tiles
    of a clip are compared (`window_rms`) and averaged; the result is the mean over clips with two or more
    tiles. SinMDM compares one random pair of 15-frame windows per clip (which may overlap), with its Frobenius
    norm over the frame count (see inter_diversity); all pairs of tiles make this deterministic. nan when no clip
    holds two tiles.
    """
    per_clip = []
    for clip in as_clips(generated):
        clip_tiles = tiles(clip, window)
        count = len(clip_tiles)
        first, second = np.triu_indices(count, k=1)  # every pair of different tiles, each once
        pairs = window_rms(clip_tiles[first], clip_tiles[second])  # (pairs,)
        if len(pairs):
            per_clip.append(np.mean(pairs))
    return float(np.mean(per_clip)) if per_clip else float("nan")


def resolve_windows(
    generated: Clips,
    info: MotionData,
    coverage_window: Optional[int] = None,
    local_window: Optional[int] = None,
    min_segment: Optional[int] = None,
    diversity_window: Optional[int] = None,
    copy_window: Optional[int] = None,
) -> dict:
    """Window lengths (frames) for the report: given ones kept, the rest from fps; all capped at the shortest clip."""
    fps, shortest = float(info.fps), min(len(clip) for clip in generated)

    def frames(given, seconds):
        return min(int(given) if given is not None else max(1, int(round(seconds * fps))), shortest)

    return {
        "coverage_window": frames(coverage_window, COVERAGE_SECONDS),
        "local_window": frames(local_window, LOCAL_SECONDS),
        "min_segment": frames(min_segment, MIN_SEGMENT_SECONDS),
        "diversity_window": frames(diversity_window, DIVERSITY_SECONDS),
        "copy_window": min(int(copy_window if copy_window is not None else info.window), shortest),
    }


def single_motion_report(
    generated: Clips,
    training: np.ndarray,
    heldout: Clips,
    info: MotionData,
    generated_positions: Optional[Sequence[np.ndarray]] = None,
    training_positions: Optional[np.ndarray] = None,
    up_index: Optional[int] = None,
    feet: Optional[Sequence[int]] = None,
    coverage_window: Optional[int] = None,
    coverage_threshold: float = COVERAGE_THRESHOLD,
    local_window: Optional[int] = None,
    min_segment: Optional[int] = None,
    diversity_window: Optional[int] = None,
    copy_window: Optional[int] = None,
    copy_fraction: float = COPY_FRACTION,
) -> dict:
    """Each measure of REPORT_KEYS (plain floats and one bool) of generated clips against the training sequence.

    `generated` (K x (T_k, D)), `training` (T, D) and `heldout` (the dance's held-out windows or span, V x (N, D)) are
    descriptors: what coverage, the diversities and the copy check compare. Bone lengths, jitter and foot skating
    use positions: `generated_positions` (K x (T_k, J, dims)) and `training_positions` (T, J, dims), both or neither;
    by default the descriptors un-flattened with info.dims (the 2D dance's normalised keypoints: one shift and one
    scale leave the relative bone error and the acceleration ratio unchanged). Foot skating needs 3D positions and
    `up_index` (their vertical axis); `feet` are the contact joints (default: `contact_joints`). Windows default as
    `resolve_windows`, capped at the shortest generated or held-out clip.
    """
    clips, training, heldout = as_clips(generated), np.asarray(training, dtype=np.float64), as_clips(heldout)
    windows = resolve_windows(
        clips + heldout, info, coverage_window, local_window, min_segment, diversity_window, copy_window
    )
    if (generated_positions is None) != (training_positions is None):
        raise UserError("single_motion_report needs generated_positions and training_positions both, or neither.")
    if generated_positions is None:
        generated_positions = [unflatten_keypoints(clip, info.dims) for clip in clips]
        training_positions = unflatten_keypoints(training, info.dims)
    positions = [np.asarray(clip, dtype=np.float64) for clip in generated_positions]  # K x (T_k, J, dims)
    training_positions = np.asarray(training_positions, dtype=np.float64)  # (T, J, dims)
    assert len(positions) == len(clips), "one position clip per descriptor clip"
    reference_lengths = bone_lengths(training_positions, info.parents).mean(axis=0)  # (bones,)
    copy_window = windows["copy_window"]
    nn_generated, nn_heldout = nn_distance(clips, training, copy_window), nn_distance(heldout, training, copy_window)
    nearest = nearest_per_clip(clips, training, windows["coverage_window"])  # (K, Wt)
    report = {
        "coverage": float(np.mean(nearest < coverage_threshold)),
        "pooled_coverage": float(np.mean(nearest.min(axis=0) < coverage_threshold)),
        "replay_coverage": clip_coverage(
            replay_clips(training, [len(clip) for clip in clips] * REPLAYS, copy_window),
            training,
            windows["coverage_window"],
            coverage_threshold,
        ),
        "local_diversity": local_diversity(clips, training, windows["local_window"]),
        "global_diversity": global_diversity(clips, training, windows["min_segment"]),
        "inter_diversity": inter_diversity(clips, windows["diversity_window"]),
        "intra_diversity": intra_diversity(clips, windows["diversity_window"]),
        "bone_length_error": bone_length_error(np.concatenate(positions), reference_lengths, info.parents),
        "jitter_ratio": clip_mean_acceleration(positions) / mean_acceleration(training_positions),
        "frozen_share": frozen_share(positions, training_positions, windows["coverage_window"]),
        "foot_skating_ratio": foot_skating_ratio(positions, training_positions, info, up_index, feet),
        "nn_distance_to_training": nn_generated,
        "heldout_nn_distance": nn_heldout,
        "copy_ratio": nn_generated / nn_heldout if nn_heldout > 0 else float("inf"),
        "copies_training": bool(nn_generated < copy_fraction * nn_heldout),
    }
    assert tuple(report) == REPORT_KEYS
    return report


def foot_skating_ratio(positions: list, training_positions: np.ndarray, info, up_index, feet) -> float:
    """Foot speed in contact of the clips K x (T_k, J, 3) / that of the training positions; nan in 2D or without
    `up_index`, contact joints or contact frames."""
    if up_index is None or training_positions.shape[-1] != 3:
        return float("nan")
    contacts = contacts_of(training_positions, info.parents, up_index, info.fps, feet)
    speeds = [contacts.horizontal_speed(clip)[contacts.in_contact(clip)] for clip in positions]  # K x (contacts,)
    pooled, reference = np.concatenate(speeds), foot_skating(training_positions, contacts)
    if len(pooled) == 0 or np.isnan(reference):
        return float("nan")
    if reference == 0:  # feet planted exactly (synthetic data): any skating is infinitely worse
        return 1.0 if pooled.mean() == 0 else float("inf")
    return float(pooled.mean() / reference)


def nn_distance(clips: list, training: np.ndarray, window: int) -> float:
    """Mean over clips of the mean distance of their `window`-frame windows (stride 1) to the nearest training one."""
    training_windows = sliding_windows(training, window)  # (Wt, w, F)
    return float(
        np.mean([nearest_window_distance(sliding_windows(clip, window), training_windows).mean() for clip in clips])
    )


def clip_coverage(clips: list, training: np.ndarray, window: int, threshold: float = COVERAGE_THRESHOLD) -> float:
    """GANimator's coverage: `coverage` of each clip on its own, averaged over the clips."""
    return float(np.mean(nearest_per_clip(clips, training, window) < threshold))


def nearest_per_clip(clips: list, training: np.ndarray, window: int) -> np.ndarray:
    """(K, Wt): each training window's (stride 1) distance to its nearest window of each clip."""
    training_windows = sliding_windows(np.asarray(training, dtype=np.float64), window)  # (Wt, w, F)
    return np.stack(
        [nearest_window_distance(training_windows, sliding_windows(clip, window)) for clip in as_clips(clips)]
    )


def window_speeds(positions: np.ndarray, window: int) -> np.ndarray:
    """(T - window + 1,): the mean joint speed (position change a frame) of each `window`-frame window of (T, J, D)."""
    assert 2 <= window <= len(positions), f"a speed window needs 2 to {len(positions)} frames, got {window}"
    speed = np.linalg.norm(np.diff(positions, axis=0), axis=-1).mean(axis=-1)  # (T - 1,)
    return sliding_windows(speed[:, None], window - 1).mean(axis=(1, 2))  # the window's window - 1 steps


def frozen_share(positions: list, training_positions: np.ndarray, window: int) -> float:
    """Share of the clips' `window`-frame windows K x (T_k, J, D) (stride 1) whose mean joint speed is below
    FROZEN_FRACTION x that of the training span's slowest window (0: never stiller than the dance gets)."""
    window = max(2, min(window, len(training_positions)))
    slowest = window_speeds(training_positions, window).min()
    speeds = np.concatenate([window_speeds(clip, window) for clip in positions if len(clip) >= window])
    return float(np.mean(speeds < FROZEN_FRACTION * slowest))


def unflatten_keypoints(features: np.ndarray, dims: int) -> np.ndarray:
    """(frames, joints * dims) features -> (frames, joints, dims) keypoints."""
    return features.reshape(len(features), -1, dims)


def clip_mean_acceleration(keypoints: list) -> float:
    """`mean_acceleration` over clips of varying lengths K x (T_k, J, D), each weighted by its T_k - 2 accelerations."""
    weights = np.array([max(len(clip) - 2, 0) for clip in keypoints], dtype=np.float64)
    assert weights.sum() > 0, "clips need at least 3 frames for an acceleration"
    values = [mean_acceleration(clip) if weight > 0 else 0.0 for clip, weight in zip(keypoints, weights)]
    return float(np.dot(weights, values) / weights.sum())

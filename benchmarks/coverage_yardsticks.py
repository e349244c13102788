"""How much of each shared dance a clip can cover without a model: the yardsticks beside a run's coverage.

    .venv/bin/python benchmarks/coverage_yardsticks.py            # every shared clip, 2D and 3D (about 15 s)

Per clip and representation, on the training span's descriptors (each data module's `measure_space`), clips twice
the span long as the evaluation makes them:
- recurring: the share of 1 s training windows with another window, at least 1 s away, within the coverage
  threshold (how often the dance repeats itself);
- replay: `replay_coverage` as evaluate prints it (the dance's exact 48-frame windows in random order);
- planned: the whole span in 48-frame pieces evenly spaced over it (each frame in about two for clips twice the
  span) and shuffled (hard cuts): coverage,
  copy ratio (against the held-out end) and global diversity (0: a collage of the dance), over 4 clips;
- bone error of real motion (2D; 3D decodes by forward kinematics, 0): `bone_length_error` of the held-out end and
  of the random replays against the training span's mean bone lengths. A 2D projection shortens a bone as it turns
  from the camera, so a clip's mean bone lengths follow the poses and headings it holds.

A second table (3D) measures the same span in GANimator's units (metrics.ganimator: rotations, under 2.0): the
coverage of a clip holding the span's mean pose, of 4 random replays, and the median cost of a held-out 1 s window.
A third (2D) does the same at the RMS threshold calibrated to 2.0 on the clip (ganimator.matched_threshold), with the
threshold, the kappa of its decisions against GANimator's over the clip's 1 s window pairs, and the share of training
windows on which both agree whether the window recurs elsewhere in the clip.
"""

import argparse
import warnings

import numpy as np

from motiondiff.data.dance3d import Dance3DDataModule
from motiondiff.data.dance_windows import DanceDataModule
from motiondiff.data.kinematics.skeleton import bone_lengths
from motiondiff.evaluation.single_dance import rotation_twin
from motiondiff.metrics import ganimator
from motiondiff.metrics.single_motion import (
    COVERAGE_THRESHOLD,
    clip_coverage,
    global_diversity,
    nearest_per_clip,
    nn_distance,
    replay_clips,
    sliding_windows,
)
from motiondiff.metrics.skeleton import bone_length_error

CLIPS = ("Gangnam-Style", "Crab-dance-long", "Walk-In-Circle")
PIECE, COVERAGE_WINDOW, CLIPS_PER_SET = 48, 30, 4


def recurring_share(training: np.ndarray, window: int) -> float:
    """Share of training windows with a window at least `window` frames away within the coverage threshold."""
    windows = sliding_windows(training, window)  # (W, w, F)
    flat = windows.reshape(len(windows), -1)
    recurring = 0
    for i, row in enumerate(flat):
        distances = np.sqrt(((flat - row) ** 2).mean(axis=1))  # (W,)
        distances[max(0, i - window + 1) : i + window] = np.inf  # overlapping windows are not repeats
        recurring += distances.min() < COVERAGE_THRESHOLD
    return recurring / len(windows)


def planned_replays(training: np.ndarray, length: int, count: int) -> list:
    """`count` clips of `length` frames, each PIECE-frame pieces evenly spaced over the whole span, shuffled."""
    pieces = -(-length // PIECE)
    starts = np.linspace(0, len(training) - PIECE, pieces).round().astype(int)
    clips = []
    for seed in range(count):
        order = np.random.default_rng(seed).permutation(starts)
        clips.append(np.concatenate([training[s : s + PIECE] for s in order])[:length])  # (length, F)
    return clips


def data_module(clip: str, dims: int, folder: str):
    """The clip's data module as the committed experiment builds it (the crab has no human joint map in 2D)."""
    source = f"{folder}/{clip}.bvh"
    if dims == 3:
        return Dance3DDataModule(source=source, window=PIECE)
    return DanceDataModule(source=source, window=PIECE, joint_map="none" if clip.startswith("Crab") else "auto")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bvh", default="../shared/data/bvh", help="folder of the shared BVH clips")
    args = parser.parse_args()
    print(
        "| clip | | recurring | replay | planned: coverage / copy ratio / global diversity "
        "| bone error: held-out, replay |"
    )
    print("|---|---|---|---|---|---|")
    for clip in CLIPS:
        for dims in (2, 3):
            data = data_module(clip, dims, args.bvh)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the crab's "no joint map fits" warning
                data.setup("fit")
            training, positions = data.measure_space(data.train_set.features.numpy())  # (T, D), (T, J, dims)
            heldout, heldout_positions = data.measure_space(data.val_set.features.numpy())  # (V, D), (V, J, dims)
            training, heldout = training.astype(np.float64), heldout.astype(np.float64)
            length = 2 * len(training)
            replays = replay_clips(training, [length] * 16, PIECE)
            replay = clip_coverage(replays, training, COVERAGE_WINDOW)
            planned = planned_replays(training, length, CLIPS_PER_SET)
            planned_cover = clip_coverage(planned, training, COVERAGE_WINDOW)
            copy_ratio = nn_distance(planned, training, PIECE) / nn_distance([heldout], training, PIECE)
            collage = global_diversity(planned, training, COVERAGE_WINDOW)
            bones = bone_errors(np.asarray(positions, np.float64), np.asarray(heldout_positions, np.float64), data)
            print(
                f"| {clip} | {dims}D | {recurring_share(training, COVERAGE_WINDOW):.2f} | {replay:.2f} | "
                f"{planned_cover:.2f} / {copy_ratio:.2f} / {collage:.3f} | {bones} |",
                flush=True,
            )
    print("\n| clip, 3D, GANimator's units | mean pose held | random replays | held-out window cost (median) |")
    print("|---|---|---|---|")
    for clip in CLIPS:
        data = data_module(clip, 3, args.bvh)
        data.setup("fit")
        print(f"| {clip} | {ganimator_yardsticks(data)} |", flush=True)
    print(
        "\n| clip, 2D at GANimator's strictness | threshold (kappa) | recurrence decisions agree | mean pose held "
        "| random replays | held-out window distance (median) |"
    )
    print("|---|---|---|---|---|---|")
    for clip in CLIPS:
        data = data_module(clip, 2, args.bvh)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data.setup("fit")
        print(f"| {clip} | {matched_yardsticks(data)} |", flush=True)


def ganimator_yardsticks(data: Dance3DDataModule) -> str:
    """GANimator's coverage of the span's mean pose held still and of 4 random replays (clips twice the span), and
    the median cost of a held-out 1 s window to the span, in its rotation units."""
    training = ganimator.rotation_rows(data.local_rotations(data.train_set.features.numpy()))  # (T, 6K)
    heldout = ganimator.rotation_rows(data.local_rotations(data.val_set.features.numpy(), len(training)))
    held = np.repeat(training.mean(axis=0, keepdims=True), 2 * len(training), axis=0)
    replays = replay_clips(training, [2 * len(training)] * CLIPS_PER_SET, PIECE)
    replayed = np.mean([ganimator.coverage(clip, training) for clip in replays])
    cost = np.median(ganimator.nearest_window_costs(heldout, training, COVERAGE_WINDOW))
    return f"{ganimator.coverage(held, training):.3f} | {replayed:.3f} | {cost:.2f}"


def matched_yardsticks(data: DanceDataModule) -> str:
    """The 2D dance's RMS threshold calibrated to GANimator's 2.0 on the same frames' rotations and the kappa of their
    pair decisions; how often the two agree on whether a training window recurs elsewhere in the clip; and at that
    threshold: the coverage of the span's mean pose held still and of 4 random replays (clips twice the span), and
    the median distance of a held-out 1 s window to its nearest training window."""
    training, _ = data.measure_space(data.train_set.features.numpy())  # (T, D)
    heldout, _ = data.measure_space(data.val_set.features.numpy())  # (V, D)
    clip, window = np.concatenate([training, heldout]), ganimator.published_windows(data.info.fps)["coverage_window"]
    rows = rotation_twin(data.source, data.window, data.val_fraction, data.info.fps)  # (T + V, 6K)
    threshold, kappa, _ = ganimator.matched_threshold(clip, rows, window)
    agree = recurrence_agreement(clip, rows, len(training), window, threshold)
    held = np.repeat(training.mean(axis=0, keepdims=True), 2 * len(training), axis=0)
    replays = replay_clips(training, [2 * len(training)] * CLIPS_PER_SET, PIECE)
    distance = np.median(nearest_per_clip([training], heldout, window))  # each held-out window to the span
    held_cover, replay_cover = (clip_coverage(c, training, window, threshold) for c in ([held], replays))
    cells = (f"{threshold:.3f} ({kappa:.2f})", f"{agree:.2f}", f"{held_cover:.3f}", f"{replay_cover:.3f}")
    return " | ".join([*cells, f"{distance:.3f}"])


def recurrence_agreement(descriptors: np.ndarray, rows: np.ndarray, frames: int, window: int, threshold: float):
    """Share of the first `frames` frames' windows on which the 2D threshold and GANimator's 2.0 agree whether the
    window's nearest other window of the clip (at least a window away) counts as alike."""
    rms, cost = ganimator.window_costs(descriptors, rows, window)  # (N, N) each
    starts = np.arange(len(rms))
    near = np.abs(starts[:, None] - starts[None]) < window  # overlapping windows are not repeats
    nearest_rms = np.where(near, np.inf, rms).min(axis=1)[: frames - window + 1]
    nearest_cost = np.where(near, np.inf, cost).min(axis=1)[: frames - window + 1]
    return float(np.mean((nearest_rms < threshold) == (nearest_cost < ganimator.COVERAGE_THRESHOLD)))


def bone_errors(positions: np.ndarray, heldout: np.ndarray, data) -> str:
    """Bone-length error of the held-out end and of random replays (2D keypoints), against the training span's."""
    if positions.shape[-1] == 3:
        return "0 (FK)"
    parents, frames = data.info.parents, len(positions)
    reference = bone_lengths(positions, parents).mean(axis=0)  # (bones,)
    flat = positions.reshape(frames, -1)  # replays of the keypoints themselves, as for the descriptors
    replays = [clip.reshape(len(clip), *positions.shape[1:]) for clip in replay_clips(flat, [2 * frames] * 16, PIECE)]
    replayed = np.mean([bone_length_error(clip, reference, parents) for clip in replays])
    return f"{bone_length_error(heldout, reference, parents):.1%}, {replayed:.1%}"


if __name__ == "__main__":
    main()

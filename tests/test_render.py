"""Skeleton videos: frames drawn on fixed axes, mp4s that read back frame for frame, clear errors."""

import imageio.v3 as iio
import numpy as np
import pytest

from motiondiff.core.errors import UserError
from motiondiff.data.kinematics.skeleton import BODY20_NAMES, BODY20_PARENTS
from motiondiff.data.procedural.dance import make_procedural_dance
from motiondiff.render.skeleton_video import (
    BACKGROUND,
    common_bounds,
    render_frames,
    write_grid_video,
    write_skeleton_video,
    write_video,
)


@pytest.fixture(scope="module")
def clip():
    return make_procedural_dance(num_frames=24)[1]  # (24, 20, 2)


def read_video(path) -> np.ndarray:
    return np.stack(list(iio.imiter(path, plugin="FFMPEG")))


def test_render_frames_draws_a_moving_skeleton(clip):
    frames = render_frames(clip, BODY20_PARENTS, size=128, names=BODY20_NAMES)
    assert frames.shape == (24, 128, 128, 3) and frames.dtype == np.uint8
    drawn = (np.abs(frames.astype(int) - np.array(BACKGROUND)).sum(-1) > 60).mean(axis=(1, 2))
    assert drawn.min() > 0.005, "bones were drawn"
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).sum() > 0, "the frames change"


def test_render_frames_keeps_fixed_axes_and_y_up():
    # a two-joint figure, root fixed at the origin; bounds 2 x 2 units in 64 px -> 32 px per unit, centre (0, 0.5)
    keypoints = np.array([[[0.0, 0.0], [0.0, 1.0]], [[0.0, 0.0], [0.5, 0.5]]])
    frames = render_frames(keypoints, (-1, 0), bounds=(-1, 1, -0.5, 1.5), size=64, labels=False)
    dark = frames.astype(int).sum(-1) < 200  # (T, H, W): joints and bone
    assert dark[0, 48, 32] and dark[1, 48, 32], "the root stays at pixel (row 48, col 32) in every frame"
    assert dark[0, 16, 32] and not dark[1, 16, 32], "tip straight above the root in frame 0 (y up)"
    assert dark[1, 32, 48] and not dark[0, 32, 48], "tip up and to the right in frame 1"


def test_common_bounds_cover_all_samples():
    a = np.zeros((3, 2, 2))
    b = np.full((3, 2, 2), 2.0)
    xmin, xmax, ymin, ymax = common_bounds([a, b], margin=0.1)
    assert xmin < 0 < 2 < xmax and ymin < 0 < 2 < ymax


def test_skeleton_video_round_trip(tmp_path, clip):
    path = write_skeleton_video(
        tmp_path / "deep" / "dance.mp4", clip, BODY20_PARENTS, fps=30, size=128, title="seed 0", names=BODY20_NAMES
    )
    video = read_video(path)
    assert video.shape == (24, 128, 128, 3)
    assert not np.array_equal(video[0], video[-1])
    assert (np.abs(video[5].astype(int) - np.array(BACKGROUND)).sum(-1) > 60).mean() > 0.005


def test_odd_size_is_padded_to_even(tmp_path, clip):
    video = read_video(write_skeleton_video(tmp_path / "odd.mp4", clip[:5], BODY20_PARENTS, fps=12.5, size=101))
    assert video.shape == (5, 102, 102, 3)


def test_grid_video_round_trip(tmp_path, clip):
    samples = [clip, clip[:, :, ::-1].copy(), clip * 0.5, clip + 0.2, clip]
    path = write_grid_video(
        tmp_path / "grid.mp4",
        samples,
        BODY20_PARENTS,
        fps=20,
        size=64,
        titles=[f"s{i}" for i in range(5)],
        names=BODY20_NAMES,
    )
    video = read_video(path)
    assert video.shape == (24, 2 * 64, 3 * 64, 3)  # 5 samples -> 2 rows x 3 columns
    tile = video[:, :64, :64]
    assert not np.array_equal(tile[0], tile[-1])


def test_refuses_to_overwrite(tmp_path, clip):
    path = tmp_path / "dance.mp4"
    write_skeleton_video(path, clip, BODY20_PARENTS, fps=30, size=64)
    with pytest.raises(UserError, match="dance.mp4"):
        write_skeleton_video(path, clip, BODY20_PARENTS, fps=30, size=64)
    write_skeleton_video(path, clip[:4], BODY20_PARENTS, fps=30, size=64, overwrite=True)
    assert len(read_video(path)) == 4


@pytest.mark.parametrize(
    "keypoints, parents, fps",
    [
        (np.zeros((4, 20, 3)), BODY20_PARENTS, 30),  # not 2D
        (np.zeros((20, 2)), BODY20_PARENTS, 30),  # not rank 3
        (np.zeros((4, 20, 2)), BODY20_PARENTS[:-1], 30),  # parents too short
        (np.full((4, 20, 2), np.nan), BODY20_PARENTS, 30),  # NaN
        (np.zeros((4, 20, 2)), BODY20_PARENTS, 0),  # fps
        (np.zeros((4, 20, 2)), BODY20_PARENTS, -5),
    ],
)
def test_bad_inputs_raise_user_error(tmp_path, keypoints, parents, fps):
    with pytest.raises(UserError):
        write_skeleton_video(tmp_path / "bad.mp4", keypoints, parents, fps=fps)
    assert not (tmp_path / "bad.mp4").exists()


def test_grid_rejects_mismatched_lengths(tmp_path, clip):
    with pytest.raises(UserError):
        write_grid_video(tmp_path / "grid.mp4", [clip, clip[:10]], BODY20_PARENTS, fps=30)


def test_write_video_rejects_bad_frames(tmp_path):
    with pytest.raises(UserError):
        write_video(tmp_path / "v.mp4", np.zeros((4, 8, 8), dtype=np.uint8), 30)
    with pytest.raises(UserError):
        write_video(tmp_path / "v.mp4", np.zeros((4, 8, 8, 3), dtype=np.float32), 30)

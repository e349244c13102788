"""3D stick-figure videos: a fixed camera, a visible ground, a legible caption, mp4s that read back, clear errors."""

import imageio.v3 as iio
import numpy as np
import pytest

from motiondiff.core.errors import UserError
from motiondiff.data.kinematics.skeleton import SMPL22_NAMES, SMPL22_PARENTS, forward_kinematics
from motiondiff.render.skeleton_video import BACKGROUND, BONE_COLOURS, labels_height
from motiondiff.render.stick3d import (
    HEAD_ROOM,
    TILE_COLOURS,
    Camera,
    check_joints,
    fit_camera,
    font,
    render_stick3d_frames,
    wrap_caption,
    write_stick3d_grid,
    write_stick3d_video,
)

# Rest offsets (metres) of a 1.7 m SMPL-22 figure facing +Z, arms hanging; its left is +X.
SMPL22_OFFSETS = np.array(
    [
        [0, 0.93, 0],
        [0.08, -0.07, 0],
        [-0.08, -0.07, 0],
        [0, 0.11, -0.02],
        [0.01, -0.38, 0],
        [-0.01, -0.38, 0],
        [0, 0.13, 0],
        [0, -0.40, -0.03],
        [0, -0.40, -0.03],
        [0, 0.05, 0.01],
        [0, -0.05, 0.12],
        [0, -0.05, 0.12],
        [0, 0.21, -0.01],
        [0.07, 0.12, 0],
        [-0.07, 0.12, 0],
        [0, 0.10, 0.03],
        [0.11, 0.02, 0],
        [-0.11, 0.02, 0],
        [0.03, -0.26, 0],
        [-0.03, -0.26, 0],
        [0, -0.25, 0.02],
        [0, -0.25, 0.02],
    ],
    dtype=float,
)
JOINT = {name: i for i, name in enumerate(SMPL22_NAMES)}


def rotation(axis: str, angles: np.ndarray) -> np.ndarray:
    """Rotation matrices (T, 3, 3) about a world axis by angles (T,) in radians."""
    c, s, one, zero = np.cos(angles), np.sin(angles), np.ones_like(angles), np.zeros_like(angles)
    rows = {
        "x": [[one, zero, zero], [zero, c, -s], [zero, s, c]],
        "y": [[c, zero, s], [zero, one, zero], [-s, zero, c]],
        "z": [[c, -s, zero], [s, c, zero], [zero, zero, one]],
    }[axis]
    return np.stack([np.stack(row, -1) for row in rows], -2)  # (T, 3, 3)


def walking_and_waving(frames: int = 40, fps: float = 20.0, speed: float = 1.2, wave: bool = True) -> np.ndarray:
    """Joints (T, 22, 3): the SMPL-22 figure walking along +Z (legs and left arm swinging), right hand waving."""
    t = np.arange(frames) / fps
    phase = 2 * np.pi * 1.0 * t  # one stride cycle per second
    local = np.tile(np.eye(3), (frames, 22, 1, 1))  # (T, 22, 3, 3)
    local[:, JOINT["left_hip"]] = rotation("x", -0.45 * np.sin(phase))
    local[:, JOINT["right_hip"]] = rotation("x", 0.45 * np.sin(phase))
    local[:, JOINT["left_knee"]] = rotation("x", 0.5 * np.maximum(0, np.sin(phase + 1.6)))
    local[:, JOINT["right_knee"]] = rotation("x", 0.5 * np.maximum(0, -np.sin(phase + 1.6)))
    local[:, JOINT["left_shoulder"]] = rotation("x", 0.35 * np.sin(phase)) @ rotation("z", np.full(frames, 0.12))
    if wave:  # arm raised to the side (-X), forearm swinging about the elbow
        local[:, JOINT["right_shoulder"]] = rotation("z", np.full(frames, -2.2))
        local[:, JOINT["right_elbow"]] = rotation("z", -0.9 + 0.45 * np.sin(2 * np.pi * 2.0 * t))
    translations = np.tile(SMPL22_OFFSETS, (frames, 1, 1))  # (T, 22, 3)
    translations[:, 0, 2] += speed * t
    translations[:, 0, 1] += 0.02 * np.cos(2 * phase)  # a little bob
    return forward_kinematics(SMPL22_PARENTS, local, translations)


def standing(frames: int, step=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Joints (T, 22, 3): the rest pose, moved by `step` metres each frame."""
    rest = forward_kinematics(SMPL22_PARENTS, np.tile(np.eye(3), (1, 22, 1, 1)), SMPL22_OFFSETS[None])  # (1, 22, 3)
    return rest + np.arange(frames)[:, None, None] * np.asarray(step)  # (T, 22, 3)


def near_colour(frame: np.ndarray, colour, tolerance: int = 40) -> np.ndarray:
    """(H, W) bool: pixels within `tolerance` (sum of channel differences) of a colour."""
    return np.abs(frame.astype(int) - np.array(colour)).sum(-1) <= tolerance


def figure_mask(frame: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels of the left or right limbs (the blue and red bones)."""
    return near_colour(frame, BONE_COLOURS["left"]) | near_colour(frame, BONE_COLOURS["right"])


def read_video(path) -> np.ndarray:
    return np.stack(list(iio.imiter(path, plugin="FFMPEG")))


def view_of(frame: np.ndarray) -> np.ndarray:
    """The frame above its labels band (legend and counter)."""
    return frame[: frame.shape[0] - labels_height(frame.shape[1])]


def test_frames_have_the_size_and_show_the_figure_at_the_pelvis():
    joints = walking_and_waving(12)
    view_height = 160 - labels_height(200)  # the labels band at the bottom is not part of the view
    camera = fit_camera(joints, aspect=200 / view_height)
    frames = render_stick3d_frames(joints, SMPL22_PARENTS, "", SMPL22_NAMES, camera, size=(200, 160))
    assert len(frames) == 12 and all(f.shape == (160, 200, 3) and f.dtype == np.uint8 for f in frames)
    pelvis, depth = camera.project(joints[:, 0], 200, view_height)  # (T, 2), (T,)
    assert (depth > 1.0).all()
    for frame, (x, y) in zip(frames, np.round(pelvis).astype(int)):
        patch = frame[y - 2 : y + 3, x - 2 : x + 3]  # (5, 5, 3)
        assert (patch.astype(int).sum(-1) < 150).any(), "the pelvis dot (near black) is drawn where the camera puts it"
    assert figure_mask(view_of(frames[0])).mean() > 0.005, "coloured limbs are drawn"


def test_default_camera_sees_the_figure_from_the_front_right_and_keeps_it_in_view():
    frame = view_of(render_stick3d_frames(standing(1), SMPL22_PARENTS, "", SMPL22_NAMES, None, (160, 160))[0])
    rows_left, cols_left = np.nonzero(near_colour(frame, BONE_COLOURS["left"]))
    rows_right, cols_right = np.nonzero(near_colour(frame, BONE_COLOURS["right"]))
    assert cols_right.mean() < cols_left.mean(), "seen from the front, the person's right side is on screen left"
    cols = np.concatenate([cols_left, cols_right])
    rows = np.concatenate([rows_left, rows_right])
    assert 5 < cols.min() and cols.max() < 155 and 5 < rows.min() and rows.max() < len(frame) - 5
    assert rows.max() - rows.min() > 0.5 * len(frame), "the figure fills a good part of the view"


def test_fit_camera_frames_the_whole_clip_tightly_and_centred():
    joints = walking_and_waving(60).reshape(-1, 3)  # 3.6 m along +Z
    camera = fit_camera(joints.reshape(60, 22, 3), aspect=1.5, fill=0.8)
    offset = np.asarray(camera.position) - np.asarray(camera.target)
    assert offset[0] < 0 < offset[2] and 0 < offset[1] < 0.5 * np.linalg.norm(offset), "front-right, a little above"
    kept = np.concatenate([joints, joints + [0, HEAD_ROOM, 0], joints * [1, 0, 1]])  # what must stay in view
    pixels, depth = camera.project(kept, 300, 200)
    assert depth.min() > 1.0
    low, high = pixels.min(0), pixels.max(0)
    assert np.allclose(0.5 * (low + high), [150, 100], atol=0.5), "centred on screen"
    assert (low >= [30 - 0.5, 20 - 0.5]).all() and (high <= [270 + 0.5, 180 + 0.5]).all(), "inside the fill margin"
    assert np.isclose(high[0], 270, atol=0.5) or np.isclose(high[1], 180, atol=0.5), "as near as the margin allows"


def test_ground_checker_fills_the_lower_half():
    frame = render_stick3d_frames(standing(1), SMPL22_PARENTS, "", SMPL22_NAMES, None, (160, 160))[0]
    lower = frame[80:]
    for colour in TILE_COLOURS:
        assert near_colour(lower, colour, tolerance=4).mean() > 0.15, f"ground tiles {colour} cover the floor"
    assert near_colour(frame[:10], BACKGROUND, tolerance=0).mean() > 0.9, "the sky above stays background"


def test_caption_is_written_in_a_band_at_the_top():
    joints = standing(1)
    plain = render_stick3d_frames(joints, SMPL22_PARENTS, "", SMPL22_NAMES, None, (240, 240))[0]
    text = "a person walks forward and waves with the right hand while looking around"
    captioned = render_stick3d_frames(joints, SMPL22_PARENTS, text, SMPL22_NAMES, None, (240, 240))[0]
    dark_plain = plain.astype(int).sum(-1) < 300  # (H, W): text, joints
    dark_captioned = captioned.astype(int).sum(-1) < 300
    assert not dark_plain[:24].any(), "without a caption nothing dark is near the top"
    assert dark_captioned[:12].sum() > 40, "caption text in the first line"
    assert dark_captioned[12:24].sum() > 40, "the long caption wraps onto a second line"
    limb_rows = np.nonzero(figure_mask(view_of(captioned)).any(1))[0]
    assert limb_rows.min() > 24, "the figure sits below the caption"


def test_wrap_caption_keeps_lines_within_the_width():
    typeface = font(14)
    text = "a person jumps up and down then walks in a circle counterclockwise " * 3
    lines = wrap_caption(text, typeface, 150, max_lines=3)
    assert len(lines) == 3 and lines[-1].endswith("...")
    assert all(typeface.getlength(line) <= 150 for line in lines)
    short = wrap_caption("walk forward slowly", typeface, 150)
    assert short == ["walk forward slowly"] or " ".join(short) == "walk forward slowly"
    split = wrap_caption("supercalifragilisticexpialidocious", typeface, 60)
    assert len(split) > 1 and all(typeface.getlength(line) <= 60 for line in split), "a long word is split"


def test_motionless_figure_gives_identical_frames():
    joints = standing(4)
    still = render_stick3d_frames(joints, SMPL22_PARENTS, "stand", SMPL22_NAMES, None, (160, 160), labels=False)
    assert all(np.array_equal(still[0], f) for f in still[1:])
    counted = render_stick3d_frames(joints, SMPL22_PARENTS, "stand", SMPL22_NAMES, None, (160, 160), fps=10)
    changed = np.nonzero((counted[0] != counted[3]).any(-1))  # (rows, cols) that differ
    band = 160 - labels_height(160)
    assert len(changed[0]) > 0 and changed[0].min() >= band and changed[1].min() > 80, "only the counter changes"


def test_figure_walking_along_x_moves_right_on_screen_over_a_fixed_ground():
    joints = standing(10, step=(0.2, 0.0, 0.0))  # 1.8 m towards the person's left (+X)
    frames = render_stick3d_frames(joints, SMPL22_PARENTS, "", SMPL22_NAMES, None, (200, 200), labels=False)
    centres = [np.nonzero(figure_mask(f))[1].mean() for f in frames]
    assert all(b > a for a, b in zip(centres, centres[1:])), "the figure moves right every frame"
    assert centres[-1] - centres[0] > 0.25 * 200
    corner = (slice(185, 200), slice(0, 15))  # ground far from the figure: the camera does not move
    assert np.array_equal(frames[0][corner], frames[-1][corner])
    assert any(near_colour(frames[0][corner], colour, 4).mean() > 0.2 for colour in TILE_COLOURS), (
        "that corner is ground"
    )


def test_nearer_bones_draw_over_farther_ones():
    camera = Camera(position=(0.0, 1.0, 5.0), target=(0.0, 1.0, 0.0))
    names, parents = ("root", "left_bar", "pivot", "right_bar"), (-1, 0, 0, 2)

    def crossing(bar_z: float, upright_z: float) -> np.ndarray:
        """Centre pixel of a horizontal left bar at bar_z crossed by a vertical right bar at upright_z."""
        joints = np.array([[[-0.5, 1, bar_z], [0.5, 1, bar_z], [0, 1.5, upright_z], [0, 0.5, upright_z]]], float)
        return render_stick3d_frames(joints, parents, "", names, camera, (101, 101), labels=False)[0][50, 50]

    assert near_colour(crossing(-1.0, 1.0)[None], BONE_COLOURS["right"]).all(), "the nearer upright (red) wins"
    assert near_colour(crossing(1.0, -1.0)[None], BONE_COLOURS["left"]).all(), "the nearer bar (blue) wins"


def test_video_round_trip(tmp_path):
    joints = walking_and_waving(10)
    path = write_stick3d_video(
        tmp_path / "deep" / "walk.mp4",
        joints,
        SMPL22_PARENTS,
        fps=20,
        caption="walk",
        names=SMPL22_NAMES,
        size=(128, 97),
    )
    video = read_video(path)
    assert video.shape == (10, 98, 128, 3), "odd heights are padded to even"
    assert iio.immeta(path, plugin="FFMPEG")["fps"] == pytest.approx(20)
    assert np.abs(video[0].astype(int) - video[-1].astype(int)).sum(-1).max() > 100, "the figure moves"


def test_grid_runs_to_the_longest_clip_and_holds_finished_ones(tmp_path):
    clips = [walking_and_waving(6), walking_and_waving(10, wave=False), standing(3, step=(0.1, 0, 0))]
    path = write_stick3d_grid(
        tmp_path / "grid.mp4",
        clips,
        SMPL22_PARENTS,
        fps=10,
        captions=["a", "b", "c"],
        names=SMPL22_NAMES,
        cell_size=(96, 96),
    )
    video = read_video(path).astype(int)
    assert video.shape == (10, 192, 192, 3)  # 3 clips -> 2 columns, 2 rows; the 10-frame clip sets the length
    assert iio.immeta(path, plugin="FFMPEG")["fps"] == pytest.approx(10)
    third = video[:, 96:, :96]  # (T, 96, 96, 3): the 3-frame clip
    body = (slice(0, 96 - labels_height(96)), slice(0, 96))  # above the legend and counter
    assert np.abs(third[0][body] - third[2][body]).max() > 100, "the short clip moves while it lasts"
    assert np.abs(third[4][body] - third[9][body]).mean() < 1.0, "then holds its last frame"
    assert np.abs(third[2][body] - third[9][body]).mean() < 1.0
    second = video[:, :96, 96:]
    assert np.abs(second[5][body] - second[9][body]).max() > 100, "the longest clip still moves at the end"


def test_refuses_to_overwrite(tmp_path):
    path = tmp_path / "walk.mp4"
    write_stick3d_video(path, standing(3), SMPL22_PARENTS, fps=10, size=(64, 64))
    with pytest.raises(UserError, match="walk.mp4"):
        write_stick3d_video(path, standing(3), SMPL22_PARENTS, fps=10, size=(64, 64))
    with pytest.raises(UserError, match="walk.mp4"):
        write_stick3d_grid(path, [standing(3)], SMPL22_PARENTS, fps=10, captions=[""], cell_size=(64, 64))
    write_stick3d_video(path, standing(2), SMPL22_PARENTS, fps=10, size=(64, 64), overwrite=True)
    assert len(read_video(path)) == 2


GOOD = standing(3)


@pytest.mark.parametrize(
    "joints, parents, fps, extra",
    [
        (GOOD[..., :2], SMPL22_PARENTS, 30, {}),  # 2D
        (GOOD[0], SMPL22_PARENTS, 30, {}),  # not rank 3
        (GOOD[:0], SMPL22_PARENTS, 30, {}),  # no frames
        (GOOD, SMPL22_PARENTS[:-1], 30, {}),  # parents too short
        (GOOD, (-1, 1) + SMPL22_PARENTS[2:], 30, {}),  # a joint its own parent
        (GOOD, (-1, 21) + SMPL22_PARENTS[2:], 30, {}),  # a parent after its child
        (GOOD, (-1, -2) + SMPL22_PARENTS[2:], 30, {}),  # not an index
        (np.where(np.arange(22)[None, :, None] == 3, np.nan, GOOD), SMPL22_PARENTS, 30, {}),  # NaN
        (np.full_like(GOOD, np.inf), SMPL22_PARENTS, 30, {}),  # inf
        (GOOD, SMPL22_PARENTS, 0, {}),  # fps
        (GOOD, SMPL22_PARENTS, -5, {}),
        (GOOD, SMPL22_PARENTS, "30", {}),
        (GOOD, SMPL22_PARENTS, 30, {"names": SMPL22_NAMES[:-1]}),
        (GOOD, SMPL22_PARENTS, 30, {"size": (16, 16)}),
        (GOOD, SMPL22_PARENTS, 30, {"camera": "front"}),
    ],
)
def test_bad_inputs_raise_user_error(tmp_path, joints, parents, fps, extra):
    with pytest.raises(UserError):
        write_stick3d_video(tmp_path / "bad.mp4", joints, parents, fps, **extra)
    assert not (tmp_path / "bad.mp4").exists()


@pytest.mark.parametrize(
    "clips, captions, extra",
    [
        ([], [], {}),  # no clips
        ([GOOD, GOOD], ["one"], {}),  # captions do not match
        ([GOOD, GOOD[..., :2]], ["a", "b"], {}),  # one clip malformed
        ([GOOD], ["a"], {"columns": 0}),
        ([GOOD], ["a"], {"cell_size": (320,)}),
    ],
)
def test_grid_bad_inputs_raise_user_error(tmp_path, clips, captions, extra):
    with pytest.raises(UserError):
        write_stick3d_grid(tmp_path / "bad.mp4", clips, SMPL22_PARENTS, 30, captions, **extra)
    assert not (tmp_path / "bad.mp4").exists()


def test_far_travel_and_far_from_origin_render_quickly():
    joints = standing(3, step=(60.0, 0.0, 0.0)) + [1000.0, 0.0, -500.0]  # 120 m of travel, 1 km from the origin
    frames = render_stick3d_frames(joints, SMPL22_PARENTS, "", SMPL22_NAMES, None, (96, 96), labels=False)
    assert all((f[:, 3:-3].astype(int).sum(-1) < 300).any() for f in frames), "the (tiny) figure is in every frame"
    assert not np.array_equal(frames[0], frames[-1])


def test_check_joints_returns_floats():
    assert check_joints(np.zeros((2, 3, 3), dtype=np.float32), (-1, 0, 1)).dtype == np.float64

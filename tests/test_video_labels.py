"""What a person sees in the videos and the terminal: frame sizes, the frame counter, the left/right legend, the long
dance's length and labelled sampler progress bars."""

import inspect
import sys
from types import SimpleNamespace
from unittest import mock

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from conftest import compose_config
from motiondiff.data.kinematics.skeleton import BODY20_NAMES, BODY20_PARENTS, SMPL22_NAMES, SMPL22_PARENTS
from motiondiff.data.procedural.dance import make_procedural_dance
from motiondiff.diffusion.samplers import DDIMSampler, DDPMSampler
from motiondiff.diffusion.schedule import LinearSchedule
from motiondiff.generation.prompts import progress_label
from motiondiff.generation.windows import generate_and_save
from motiondiff.render.skeleton_video import (
    BONE_COLOURS,
    counter_texts,
    labels_height,
    render_frames,
    render_grid,
    title_height,
    write_skeleton_video,
)
from motiondiff.render.stick3d import render_stick3d_frames, write_stick3d_video
from motiondiff.training.diffusion_module import MotionDiffusion


@pytest.fixture(scope="module")
def clip():
    return make_procedural_dance(num_frames=6)[1]  # (6, 20, 2)


def still(clip: np.ndarray, frames: int = 2) -> np.ndarray:
    """`frames` copies of the clip's first pose: frames that differ only in their index."""
    return np.repeat(clip[:1], frames, axis=0)


def exact(frame: np.ndarray, colour) -> np.ndarray:
    """(H, W) bool: pixels of exactly this colour."""
    return (frame == np.array(colour, dtype=np.uint8)).all(-1)


def standing_3d(frames: int) -> np.ndarray:
    """Joints (T, 22, 3): a crude upright figure (each joint 8 cm above its parent, sides apart), not moving."""
    joints = np.zeros((22, 3))
    for j, p in enumerate(SMPL22_PARENTS):
        side = 0.1 if "left" in SMPL22_NAMES[j] else -0.1 if "right" in SMPL22_NAMES[j] else 0.0
        joints[j] = (joints[p] if p >= 0 else np.array([0.0, 0.9, 0.0])) + [side, 0.08 * (p >= 0), 0.0]
    return np.repeat(joints[None], frames, axis=0)


def test_single_videos_are_480_pixels_by_default(tmp_path, clip):
    assert render_frames(clip[:1], BODY20_PARENTS, names=BODY20_NAMES).shape == (1, 480, 480, 3)
    video = iio.imread(write_skeleton_video(tmp_path / "d.mp4", clip[:3], BODY20_PARENTS, 30, names=BODY20_NAMES))
    assert video.shape == (3, 480, 480, 3)
    joints = standing_3d(2)
    assert render_stick3d_frames(joints, SMPL22_PARENTS, "", SMPL22_NAMES)[0].shape == (480, 480, 3)


@pytest.mark.parametrize("count, shape", [(1, (320, 320)), (4, (640, 640)), (8, (960, 960)), (25, (960, 960))])
def test_grid_tiles_are_sized_for_the_grid(clip, count, shape):
    grid = render_grid([clip[:1]] * count, BODY20_PARENTS, names=BODY20_NAMES)
    assert grid.shape[1:3] == shape


def test_counter_reads_frame_of_count_and_seconds():
    assert counter_texts(11, 48, 30.0)[0] == "frame 12/48 · 0.4 s"
    assert counter_texts(11, 48)[0] == "frame 12/48"
    assert counter_texts(3, 4, 10.0, ended=True)[0] == "end · 4/4 · 0.3 s"
    assert all(len(a) > len(b) for a, b in zip(counter_texts(0, 9, 30), counter_texts(0, 9, 30)[1:])), "longest first"


@pytest.mark.parametrize("size", [480, 320, 160, 96])
def test_2d_counter_changes_only_in_the_bottom_right_band(clip, size):
    frames = render_frames(still(clip), BODY20_PARENTS, size=size, title="s", names=BODY20_NAMES, fps=30)
    rows, cols = np.nonzero((frames[0] != frames[1]).any(-1))
    assert len(rows) > 0, "the counter shows the frame number"
    assert rows.min() >= size - labels_height(size) and cols.min() >= size // 2, "in the bottom-right corner"
    plain = render_frames(still(clip), BODY20_PARENTS, size=size, names=BODY20_NAMES, labels=False)
    assert np.array_equal(plain[0], plain[1])


def test_3d_counter_changes_only_in_the_bottom_right_band():
    frames = render_stick3d_frames(standing_3d(2), SMPL22_PARENTS, "stand", SMPL22_NAMES, size=(320, 240), fps=20)
    rows, cols = np.nonzero((frames[0] != frames[1]).any(-1))
    assert len(rows) > 0 and rows.min() >= 240 - labels_height(320) and cols.min() >= 160


def legend_columns(band: np.ndarray) -> dict:
    """Mean column of the pixels of exactly each bone colour in a labels band."""
    return {side: np.nonzero(exact(band, BONE_COLOURS[side]))[1] for side in ("left", "right")}


@pytest.mark.parametrize("size", [480, 160])
def test_2d_legend_shows_left_then_right_in_the_bone_colours(clip, size):
    frame = render_frames(clip[:1], BODY20_PARENTS, size=size, names=BODY20_NAMES, fps=30)[0]
    columns = legend_columns(frame[size - labels_height(size) :])
    assert len(columns["left"]) > 10 and len(columns["right"]) > 10, "a swatch of each bone colour"
    assert columns["left"].max() < columns["right"].min() < size // 2, "left first, both at the left"
    unnamed = render_frames(clip[:1], BODY20_PARENTS, size=size, fps=30)[0]  # every bone the centre colour
    assert not any(len(c) for c in legend_columns(unnamed[size - labels_height(size) :]).values()), "no legend"


def test_3d_legend_shows_left_then_right_in_the_bone_colours():
    frame = render_stick3d_frames(standing_3d(1), SMPL22_PARENTS, "", SMPL22_NAMES, size=(320, 320), fps=20)[0]
    columns = legend_columns(frame[320 - labels_height(320) :])
    assert len(columns["left"]) > 10 and len(columns["right"]) > 10
    assert columns["left"].max() < columns["right"].min() < 160


def test_2d_figure_stays_between_the_title_and_the_labels(clip):
    size = 480
    frame = render_frames(clip, BODY20_PARENTS, size=size, title="sample 0", names=BODY20_NAMES, fps=30)
    limbs = np.zeros(frame.shape[:3], bool)
    for side in ("left", "right"):
        limbs |= exact(frame, BONE_COLOURS[side])
    rows = np.nonzero(limbs[:, : size - labels_height(size)].any(-1))[1]
    assert rows.min() >= title_height(size), "no bone in the title band"
    assert limbs[:, size - labels_height(size) :].any(), "the legend is in the labels band"


def test_3d_video_has_counter_and_legend(tmp_path):
    path = write_stick3d_video(tmp_path / "s.mp4", standing_3d(3), SMPL22_PARENTS, 10, "s", SMPL22_NAMES)
    video = iio.imread(path).astype(int)
    band = slice(480 - labels_height(480), 480)
    assert np.abs(video[0, band] - video[2, band]).max() > 100, "the counter changes"
    top = slice(0, 480 - labels_height(480))
    assert np.abs(video[0, top] - video[2, top]).mean() < 0.5, "nothing else does (but for h264 noise)"
    for side in ("left", "right"):
        near = np.abs(video[0, band] - np.array(BONE_COLOURS[side])).sum(-1) < 40
        assert near.sum() > 10, f"the legend's {side} swatch survives compression"


def test_default_long_dance_lasts_at_least_10_seconds(tmp_path):
    """configs/generate.yaml and the demo (train experiment=dance2d) chain enough windows for >= 10 s."""
    demo = compose_config("train", tmp_path / "train", ["experiment=dance2d"])
    window, fps = demo.dataset.window, demo.dataset.fps
    overlap = inspect.signature(generate_and_save).parameters["chain_overlap"].default  # what training passes
    demo_frames = window + (demo.callbacks.generate_after_training.chain_windows - 1) * (window - overlap)
    assert demo_frames / fps >= 10.0
    generate = compose_config("generate", tmp_path / "gen")
    frames = window + (generate.chain_windows - 1) * (window - generate.chain_overlap)
    assert frames / fps >= 10.0


class Zero:
    """A denoiser that predicts zeros, for sampling loops without a network."""

    def __call__(self, x, t):
        return torch.zeros_like(x), torch.zeros_like(x)


def as_terminal(monkeypatch) -> None:
    """Make the captured stderr say it is a terminal (call it in the test body, where capsys has replaced it)."""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # the samplers draw their bars only on a terminal


@pytest.mark.parametrize("sampler, text", [(DDIMSampler(3), "ddim 3 steps"), (DDPMSampler(), "ddpm 10 steps")])
def test_progress_bar_names_sampler_steps_and_label(capsys, monkeypatch, sampler, text):
    as_terminal(monkeypatch)
    schedule = LinearSchedule(num_steps=10)
    with sampler.labelled("8 windows"):
        sampler.sample(Zero(), schedule, torch.zeros(2, 4, 3))
    assert f"{text} · 8 windows" in capsys.readouterr().err
    sampler.sample(Zero(), schedule, torch.zeros(2, 4, 3), label="one window")
    err = capsys.readouterr().err
    assert f"{text} · one window" in err and "8 windows" not in err, "the block's label ends with the block"
    assert "label" not in sampler.describe()


def test_progress_bars_are_not_drawn_off_a_terminal(capsys):
    DDIMSampler(3).sample(Zero(), LinearSchedule(num_steps=10), torch.zeros(2, 4, 3), label="a file")
    assert "\r" not in capsys.readouterr().err  # a log file or a pipe: no carriage returns


def test_generation_labels_windows_and_each_chained_window(capsys, monkeypatch, tmp_path):
    as_terminal(monkeypatch)
    schedule, window, features = LinearSchedule(num_steps=4), 8, 4
    sampler = DDIMSampler(2)

    def sample(num, sampler, generator, frames=None, known=None, known_mask=None, overlap=None):
        noise = torch.zeros(num, frames or window, features)
        return sampler.sample(Zero(), schedule, noise, generator, known, known_mask)

    module = mock.NonCallableMock(spec=MotionDiffusion)
    module.configure_mock(
        device="cpu",
        data=SimpleNamespace(window=window, skeleton_record=lambda: {"skeleton": {}, "units": "2D keypoints"}),
        sample=sample,
    )
    module.to_keypoints.side_effect = lambda f: f.reshape(*f.shape[:-1], 2, 2).numpy()
    options = {"num_samples": 3, "chain_windows_count": 3, "chain_overlap": 2, "render": False}
    generate_and_save(module, sampler, tmp_path / "a", **options, chain_sampling="sequential")
    err = capsys.readouterr().err
    assert "ddim 2 steps · 3 windows of 8 frames" in err
    assert "ddim 2 steps · long dance: chained window 2/3" in err and "chained window 3/3" in err
    generate_and_save(module, sampler, tmp_path / "b", **options)  # joint: one sampling of all windows
    assert "ddim 2 steps · long dance: chained window 1-3/3 at once" in capsys.readouterr().err


def test_prompt_progress_label_names_the_prompts():
    assert progress_label(["a person walks"], 1) == "1 prompt x 1 motion: 'a person walks'"
    label = progress_label(["a person walks", "a person jumps", "a person waves", "x" * 80], 2)
    assert label.startswith("4 prompts x 2 motions: 'a person walks', 'a person jumps'") and label.endswith("...")
    assert len(progress_label(["y" * 200], 1)) < 60, "long prompts are shortened"

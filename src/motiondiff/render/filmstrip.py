"""Samples as pictures for experiment trackers: a film strip (one PNG) and an animated GIF of all samples.

The strip has one row per sample and a few evenly spaced frames of it side by side, each with its frame
counter, so a tracker that shows only images still shows the motion. The animation tiles the samples in a
near-square grid (a finished shorter clip holds its last frame) and is encoded as a GIF with PIL, which
needs neither moviepy nor ffmpeg (TensorBoard shows an animated GIF as its video does; W&B and MLflow show
the file). 2D keypoints (T, J, 2) are drawn as in the sample videos, 3D joints (T, J, 3) as 3D stick figures.
"""

import io
import math
from collections.abc import Sequence
from typing import Callable, Optional

import numpy as np
from PIL import Image

from motiondiff.core.checks import frame_rate, whole_number
from motiondiff.core.errors import UserError
from motiondiff.data.info import MotionData
from motiondiff.render.skeleton_video import BACKGROUND, BORDER, common_bounds, frame_painter, tile
from motiondiff.render.stick3d import StickFigureView

TILE_SIZE = 192  # pixels: the side of one sample's picture
GIF_MAX_FPS = 15.0  # animations drop frames above this rate (GIF delays are in 1/100 s; smaller files)


def sample_painters(clips: Sequence[np.ndarray], info: MotionData, captions=None, size: int = TILE_SIZE) -> list:
    """One function i -> frame i (size, size, 3) uint8 per clip (T_k, J, 2 or 3), with its title or caption; past
    its end a clip holds its last frame (its counter says 'end')."""
    if len(clips) == 0:
        raise UserError("no samples to draw; pass at least one clip of shape (frames, joints, 2 or 3).")
    if captions is not None and len(captions) != len(clips):
        raise UserError(f"captions has {len(captions)} entries for {len(clips)} clips; pass one caption per clip.")
    size = whole_number("size", size, minimum=64, why="pixels, e.g. size=192")
    dims = {np.asarray(clip).shape[-1] for clip in clips}
    if dims == {2}:
        bounds = common_bounds(list(clips))  # one set of axes for every sample: sizes compare
        titles = captions or [f"sample {k}" for k in range(len(clips))]
        painters = [
            frame_painter(clip, info.parents, bounds, size, titles[k], info.joint_names, info.fps)
            for k, clip in enumerate(clips)
        ]
        return [holding(paint, len(clip)) for paint, clip in zip(painters, clips)]
    if dims == {3}:
        captions = captions or [""] * len(clips)
        views = [
            StickFigureView(clip, info.parents, caption, info.joint_names, size=(size, size), fps=info.fps)
            for clip, caption in zip(clips, captions)
        ]
        return [lambda i, view=view: view.frame(min(i, len(view) - 1), ended=i >= len(view)) for view in views]
    raise UserError(
        f"samples must all be 2D (frames, joints, 2) or all 3D (frames, joints, 3), got dims {sorted(dims)}."
    )


def holding(paint: Callable[[int], np.ndarray], length: int) -> Callable[[int], np.ndarray]:
    """paint(i), holding the last frame past the clip's end."""
    return lambda i: paint(min(i, length - 1))


def strip_indices(length: int, count: int) -> list:
    """`count` frame indices spread evenly from the first frame to the last (fewer for a shorter clip)."""
    count = min(count, length)
    return sorted({round(i * (length - 1) / max(1, count - 1)) for i in range(count)})


def filmstrip(
    clips: Sequence[np.ndarray], info: MotionData, captions=None, frames: int = 6, size: int = TILE_SIZE
) -> np.ndarray:
    """One image (rows * size, frames * size, 3) uint8: a row per clip, `frames` evenly spaced frames of it."""
    frames = whole_number("frames", frames, why="frames per sample in the strip, e.g. 6")
    painters = sample_painters(clips, info, captions, size)
    strip = np.empty((len(clips) * size, frames * size, 3), dtype=np.uint8)
    strip[:] = np.array(BACKGROUND, dtype=np.uint8)
    for row, (paint, clip) in enumerate(zip(painters, clips)):
        for column, index in enumerate(strip_indices(len(clip), frames)):
            strip[row * size : (row + 1) * size, column * size : (column + 1) * size] = paint(index)
    strip[size - 1 :: size] = strip[:, size - 1 :: size] = np.array(BORDER, dtype=np.uint8)  # lines between tiles
    return strip


def animation_frames(
    clips: Sequence[np.ndarray], info: MotionData, captions=None, size: int = TILE_SIZE, max_fps: float = GIF_MAX_FPS
) -> tuple:
    """(frames (T', H, W, 3) uint8 tiling every clip in a near-square grid, their rate): every frame up to max_fps,
    every second (third...) frame above it; a clip that has ended holds its last frame."""
    painters = sample_painters(clips, info, captions, size)
    stride = max(1, math.ceil(frame_rate(info.fps) / max_fps - 1e-9))
    longest = max(len(clip) for clip in clips)
    shown = range(0, longest, stride)
    frames = np.stack([tile([paint(i) for paint in painters]) for i in shown])
    return frames, info.fps / stride


def gif_bytes(frames: np.ndarray, fps: float, loop: bool = True) -> bytes:
    """Frames (T, H, W, 3) uint8 as an animated GIF (one shared palette, `fps` frames per second, looping)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise UserError(f"frames must be a non-empty uint8 array (frames, height, width, 3), got {frames.shape}.")
    delay = max(2, round(100 / frame_rate(fps)))  # hundredths of a second; browsers treat 0 or 1 as 10
    images = [Image.fromarray(frame) for frame in frames]
    palette = images[0].quantize(colors=255, method=Image.Quantize.MEDIANCUT)
    paletted = [image.quantize(palette=palette, dither=Image.Dither.NONE) for image in images]
    buffer = io.BytesIO()
    options = {"loop": 0} if loop else {}
    paletted[0].save(
        buffer, format="GIF", save_all=True, append_images=paletted[1:], duration=delay * 10, optimize=False, **options
    )
    return buffer.getvalue()


def clips_of(positions: np.ndarray, lengths: Optional[Sequence[int]] = None) -> list:
    """Clips (T_k, J, D) from padded positions (K, N, J, D) and each one's length (all N when None)."""
    positions = np.asarray(positions)
    lengths = [positions.shape[1]] * len(positions) if lengths is None else [int(n) for n in lengths]
    return [positions[k, :n] for k, n in enumerate(lengths)]

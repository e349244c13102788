"""Headless skeleton videos from 2D keypoints: frames drawn with PIL, mp4 written with moviepy (libx264, yuv420p).

Keypoints are in data units with y up; every frame of a video shares one fixed set of
axes (`bounds`), so motion shows as motion and not as a re-framed camera.
"""

import functools
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from motiondiff.core.checks import whole_number
from motiondiff.core.errors import UserError

BACKGROUND = (246, 246, 242)
GROUND = (170, 170, 165)
TEXT = (40, 40, 40)
BONE_COLOURS = {"left": (40, 110, 220), "right": (225, 70, 50), "centre": (60, 60, 60)}
JOINT_COLOUR = (20, 20, 20)


def check_keypoints(keypoints, parents=None) -> np.ndarray:
    """Keypoints as a float array (T, J, 2); UserError on a wrong shape, NaNs or a parents list of the wrong length."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.ndim != 3 or keypoints.shape[-1] != 2 or keypoints.shape[0] < 1:
        raise UserError(
            f"keypoints must have shape (frames, joints, 2), got {keypoints.shape}; pass 2D keypoints per frame."
        )
    if not np.isfinite(keypoints).all():
        raise UserError("keypoints contain NaN or infinite values; clean or interpolate them before rendering.")
    if parents is not None and len(parents) != keypoints.shape[1]:
        raise UserError(
            f"parents has {len(parents)} entries but keypoints have {keypoints.shape[1]} joints; "
            "pass the matching skeleton."
        )
    return keypoints


def check_fps(fps) -> float:
    """fps as a float; UserError unless it is a positive number."""
    if not isinstance(fps, (int, float, np.number)) or not math.isfinite(fps) or fps <= 0:
        raise UserError(f"fps must be a positive number, got {fps!r}; pass e.g. fps=30.")
    return float(fps)


def common_bounds(keypoint_arrays, margin: float = 0.1) -> tuple:
    """(xmin, xmax, ymin, ymax) covering all frames of all arrays, padded by `margin` of the larger extent."""
    points = np.concatenate([check_keypoints(k).reshape(-1, 2) for k in keypoint_arrays])  # (N, 2)
    low, high = points.min(0), points.max(0)
    pad = margin * max(float((high - low).max()), 1e-6)
    return (low[0] - pad, high[0] + pad, low[1] - pad, high[1] + pad)


def side_of(name: str) -> str:
    """'left', 'right' or 'centre' from a joint name."""
    lowered = name.lower()
    if lowered.startswith(("left", "l_")) or "_left" in lowered:
        return "left"
    if lowered.startswith(("right", "r_")) or "_right" in lowered:
        return "right"
    return "centre"


def to_pixels(keypoints: np.ndarray, bounds, size: int) -> np.ndarray:
    """Data coordinates (..., 2) to pixel coordinates in a size x size image: aspect kept, centred, y flipped."""
    xmin, xmax, ymin, ymax = (float(v) for v in bounds)
    if not (xmax > xmin and ymax > ymin):
        raise UserError(f"bounds must be (xmin, xmax, ymin, ymax) with xmin < xmax and ymin < ymax, got {bounds}.")
    scale = size / max(xmax - xmin, ymax - ymin)  # pixels per data unit
    cx, cy = 0.5 * (xmin + xmax), 0.5 * (ymin + ymax)
    px = size / 2 + (keypoints[..., 0] - cx) * scale
    py = size / 2 - (keypoints[..., 1] - cy) * scale
    return np.stack([px, py], axis=-1)


@functools.lru_cache(maxsize=8)
def title_font(size: int):
    """PIL's built-in font at a size that suits a size x size frame."""
    return ImageFont.load_default(size=max(10, size // 18))


def draw_frame(pixels: np.ndarray, parents, colours, size: int, ground_y, title, head=None) -> np.ndarray:
    """One frame (size, size, 3) uint8 from joint pixels (J, 2); head = (joint index, radius in pixels) draws a ring."""
    image = Image.new("RGB", (size, size), BACKGROUND)
    draw = ImageDraw.Draw(image)
    if ground_y is not None and 0 <= ground_y < size:
        draw.line([(0, ground_y), (size, ground_y)], fill=GROUND, width=max(1, size // 200))
    width = max(2, round(size / 64))
    for j, p in enumerate(parents):
        if p >= 0:
            draw.line([tuple(pixels[p]), tuple(pixels[j])], fill=colours[j], width=width)
    if head is not None:
        (hx, hy), r = pixels[head[0]], head[1]
        draw.ellipse([hx - r, hy - r, hx + r, hy + r], outline=BONE_COLOURS["centre"], width=width)
    radius = max(1.5, size / 110)
    for x, y in pixels:
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=JOINT_COLOUR)
    if title:
        draw.text((4, 3), str(title), fill=TEXT, font=title_font(size))
    return np.asarray(image)


def render_frames(keypoints, parents, bounds=None, size: int = 256, title=None, names=None) -> np.ndarray:
    """Frames (T, size, size, 3) uint8 of a skeleton, fixed axes; left/right bones coloured when `names` is given."""
    keypoints = check_keypoints(keypoints, parents)  # (T, J, 2)
    size = whole_number("size", size, minimum=16, why="pixels, e.g. size=256")
    if names is not None and len(names) != len(parents):
        raise UserError(
            f"names has {len(names)} entries but the skeleton has {len(parents)} joints; pass matching names."
        )
    bounds = common_bounds([keypoints]) if bounds is None else bounds
    pixels = to_pixels(keypoints, bounds, size)  # (T, J, 2)
    ground_y = float(to_pixels(np.zeros(2), bounds, size)[1]) if bounds[2] <= 0 <= bounds[3] else None
    sides = [side_of(n) for n in names] if names is not None else ["centre"] * len(parents)
    colours = [BONE_COLOURS[side] for side in sides]
    head = head_ring(pixels, parents, names)
    return np.stack([draw_frame(frame, parents, colours, size, ground_y, title, head) for frame in pixels])


def head_ring(pixels: np.ndarray, parents, names):
    """(head index, radius) for a ring around joint 'head' (radius from its longest bone to its parent), else None."""
    if names is None or "head" not in names or parents[list(names).index("head")] < 0:
        return None
    j = list(names).index("head")
    length = np.linalg.norm(pixels[:, j] - pixels[:, parents[j]], axis=-1).max()  # longest 2D view of the neck bone
    return (j, max(2.0, 0.9 * float(length)))


def pad_to_even(frames: np.ndarray) -> np.ndarray:
    """Frames (T, H, W, 3) padded by one background row/column where H or W is odd (yuv420p needs even sizes)."""
    _, height, width, _ = frames.shape
    if height % 2 == 0 and width % 2 == 0:
        return frames
    padded = np.empty((frames.shape[0], height + height % 2, width + width % 2, 3), dtype=np.uint8)
    padded[:] = np.array(BACKGROUND, dtype=np.uint8)
    padded[:, :height, :width] = frames
    return padded


def write_video(path, frames, fps, overwrite: bool = False) -> Path:
    """Write frames (T, H, W, 3) uint8 to an mp4 (libx264, yuv420p); refuses to replace a file unless overwrite."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise UserError(
            f"frames must be a non-empty uint8 array (frames, height, width, 3), got {frames.dtype} {frames.shape}."
        )
    return write_frames(path, lambda i: frames[i], len(frames), fps, overwrite)


def write_frames(path, frame_at, count: int, fps, overwrite: bool = False) -> Path:
    """Write `count` frames made on demand by frame_at(i) -> (H, W, 3) uint8 to an mp4 (libx264, yuv420p)."""
    from moviepy import VideoClip

    path, fps = Path(path), check_fps(fps)
    assert count >= 1, "a video needs at least one frame"
    if path.exists() and not overwrite:
        raise UserError(f"video '{path}' already exists; choose another path or pass overwrite=True.")
    path.parent.mkdir(parents=True, exist_ok=True)

    @functools.lru_cache(maxsize=2)  # moviepy asks for frame 0 twice; frames are drawn once each otherwise
    def padded(i: int) -> np.ndarray:
        return pad_to_even(frame_at(i)[None])[0]  # (H', W', 3) with even sides for yuv420p

    # Not ImageSequenceClip: under NumPy 2 its float32 frame start times repeat/skip frames at fps like 7 or 12.5.
    # moviepy samples t = i / fps for i < int(duration * fps); half a frame of slack keeps all of them
    clip = VideoClip(lambda t: padded(min(int(round(t * fps)), count - 1)), duration=(count + 0.5) / fps)
    clip.write_videofile(str(path), fps=fps, codec="libx264", audio=False, pixel_format="yuv420p", logger=None)
    clip.close()
    return path


def write_skeleton_video(
    path, keypoints, parents, fps, bounds=None, size: int = 256, title=None, names=None, overwrite: bool = False
) -> Path:
    """Render keypoints (T, J, 2) and write them as an mp4."""
    check_fps(fps)
    frames = render_frames(keypoints, parents, bounds=bounds, size=size, title=title, names=names)
    return write_video(path, frames, fps, overwrite=overwrite)


def grid_shape(count: int) -> tuple:
    """(rows, cols) of a near-square grid holding `count` tiles."""
    cols = math.ceil(math.sqrt(count))
    return math.ceil(count / cols), cols


def tile(tiles: list) -> np.ndarray:
    """Frames (T, rows*S, cols*S, 3) from equal-sized tile videos (T, S, S, 3), row by row; empty cells background."""
    rows, cols = grid_shape(len(tiles))
    frames, size = tiles[0].shape[0], tiles[0].shape[1]
    grid = np.empty((frames, rows * size, cols * size, 3), dtype=np.uint8)
    grid[:] = np.array(BACKGROUND, dtype=np.uint8)
    for i, video in enumerate(tiles):
        r, c = divmod(i, cols)
        grid[:, r * size : (r + 1) * size, c * size : (c + 1) * size] = video
    return grid


def render_grid(keypoint_list, parents, size: int = 192, titles=None, names=None) -> np.ndarray:
    """Frames (T, H, W, 3) tiling every sample (each (T, J, 2), same T) with shared bounds."""
    if len(keypoint_list) == 0:
        raise UserError("write_grid_video got no samples; pass a non-empty list of (frames, joints, 2) arrays.")
    arrays = [check_keypoints(k, parents) for k in keypoint_list]
    if len({len(a) for a in arrays}) != 1:
        raise UserError(
            f"grid samples differ in length {sorted({len(a) for a in arrays})}; pass samples of equal frame count."
        )
    if titles is not None and len(titles) != len(arrays):
        raise UserError(f"titles has {len(titles)} entries for {len(arrays)} samples; pass one title per sample.")
    bounds = common_bounds(arrays)
    tiles = [
        render_frames(a, parents, bounds=bounds, size=size, title=None if titles is None else titles[i], names=names)
        for i, a in enumerate(arrays)
    ]
    return tile(tiles)


def write_grid_video(
    path, keypoint_list, parents, fps, size: int = 192, titles=None, names=None, overwrite: bool = False
) -> Path:
    """One mp4 tiling all samples in a near-square grid on shared axes."""
    check_fps(fps)
    return write_video(path, render_grid(keypoint_list, parents, size=size, titles=titles, names=names), fps, overwrite)

"""Headless skeleton videos from 2D keypoints: frames drawn with PIL, mp4 written with moviepy (libx264, yuv420p).

Keypoints are in data units with y up; every frame of a video shares one fixed set of
axes (`bounds`), so motion shows as motion and not as a re-framed camera. Each frame has a
band at the top for the title and one at the bottom for the labels: the left/right colour
legend and a frame counter ("frame 12/48 · 0.4 s"); the figure is drawn between them.
"""

import functools
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from motiondiff.core.checks import frame_rate, whole_number
from motiondiff.core.errors import UserError

BACKGROUND = (246, 246, 242)
GROUND = (170, 170, 165)
TEXT = (40, 40, 40)
BONE_COLOURS = {"left": (40, 110, 220), "right": (225, 70, 50), "centre": (60, 60, 60)}
JOINT_COLOUR = (20, 20, 20)
BORDER = (120, 120, 120)  # the thin lines between the tiles of a grid
VIDEO_SIZE = 480  # pixels: the side of a single video
GRID_WIDTH = 960  # pixels: a grid's width aims at this, its tiles between GRID_TILE_MIN and GRID_TILE_MAX
GRID_TILE_MIN, GRID_TILE_MAX = 160, 320
LEGEND_WORDS = ({"left": "left", "right": "right"}, {"left": "L", "right": "R"})  # narrow frames get the short ones


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


def to_pixels(keypoints: np.ndarray, bounds, size: int, top: int = 0, bottom: int = 0) -> np.ndarray:
    """Data coordinates (..., 2) to pixels of a size x size image, fitted (aspect kept, centred, y flipped) between
    `top` rows at the top and `bottom` rows at the bottom."""
    xmin, xmax, ymin, ymax = (float(v) for v in bounds)
    if not (xmax > xmin and ymax > ymin):
        raise UserError(f"bounds must be (xmin, xmax, ymin, ymax) with xmin < xmax and ymin < ymax, got {bounds}.")
    height = size - top - bottom  # rows left for the figure
    assert height > 0, "the text bands took the whole frame"
    scale = min(size / (xmax - xmin), height / (ymax - ymin))  # pixels per data unit
    cx, cy = 0.5 * (xmin + xmax), 0.5 * (ymin + ymax)
    px = size / 2 + (keypoints[..., 0] - cx) * scale
    py = top + height / 2 - (keypoints[..., 1] - cy) * scale
    return np.stack([px, py], axis=-1)


@functools.lru_cache(maxsize=8)
def title_font(size: int):
    """PIL's built-in font at a size that suits a size x size frame."""
    return ImageFont.load_default(size=max(10, size // 18))


@functools.lru_cache(maxsize=8)
def label_font(width: int):
    """PIL's built-in font for the legend and counter of a frame `width` pixels wide."""
    return ImageFont.load_default(size=max(10, width // 30))


def title_height(size: int) -> int:
    """Rows of the title band at the top of a size x size frame."""
    return title_font(size).size + 8


def labels_height(width: int) -> int:
    """Rows of the labels band (legend, counter) at the bottom of a frame `width` pixels wide."""
    return label_font(width).size + 10


def counter_texts(index: int, count: int, fps=None, ended: bool = False) -> list:
    """The counter of frame `index` (0-based) of `count`, longest form first: 'frame 12/48 · 0.4 s', ..., '12/48'."""
    shown = count if ended else index + 1
    seconds = [] if fps is None else [f"{(shown - 1) / fps:.1f} s"]
    if ended:
        return [" · ".join(["end", f"{count}/{count}", *seconds]), f"end {count}/{count}", "end"]
    return [
        " · ".join([f"frame {shown}/{count}", *seconds]),
        " · ".join([f"{shown}/{count}", *seconds]),
        f"{shown}/{count}",
    ]


def legend_sides(sides) -> tuple:
    """The sides ('left', 'right') that some bone is coloured for, in that order."""
    present = set(sides)
    return tuple(side for side in ("left", "right") if side in present)


def legend_width(words, typeface) -> float:
    """Pixel width of a legend of (side, word) pairs: a colour swatch and the word for each, spaced."""
    swatch, gap = typeface.size, typeface.size // 3
    return sum(swatch + gap + typeface.getlength(word) + 2 * gap for _, word in words)


def fit_labels(counters: list, sides: tuple, typeface, width: int) -> tuple:
    """(counter text, [(side, word)]) in the longest forms (`counters` longest first) that fit side by side."""
    for words in LEGEND_WORDS:
        legend = [(side, words[side]) for side in sides]
        room = width - legend_width(legend, typeface) - 2 * typeface.size  # margins and a gap between the two
        fitting = [text for text in counters if typeface.getlength(text) <= room]
        if fitting:
            return fitting[0], legend
    return counters[-1], legend


def draw_labels(image: Image.Image, counters: list, sides: tuple, top: int) -> None:
    """The band from row `top` down: a legend (a swatch and word per side, in the bone colours) at the left and the
    frame counter at the right."""
    draw, width, typeface = ImageDraw.Draw(image), image.width, label_font(image.width)
    draw.rectangle([0, top, width, image.height], fill=BACKGROUND)
    counter, legend = fit_labels(counters, sides, typeface, width)
    pad, middle = typeface.size // 2, top + (image.height - top) // 2
    draw.text((width - pad, middle), counter, fill=TEXT, font=typeface, anchor="rm")
    x, gap, thick = pad, typeface.size // 3, max(2, typeface.size // 4)
    for side, word in legend:
        colour = BONE_COLOURS[side]
        draw.line([(x, middle), (x + typeface.size, middle)], fill=colour, width=thick)
        x += typeface.size + gap
        draw.text((x, middle), word, fill=colour, font=typeface, anchor="lm")
        x += typeface.getlength(word) + 2 * gap


def draw_frame(pixels: np.ndarray, parents, colours, size: int, ground_y, title, head=None) -> Image.Image:
    """One size x size frame from joint pixels (J, 2); head = (joint index, radius in pixels) draws a ring."""
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
    return image


def frame_painter(
    keypoints, parents, bounds=None, size: int = VIDEO_SIZE, title=None, names=None, fps=None, labels: bool = True
):
    """A function i -> frame i (size, size, 3) uint8 of a skeleton (T, J, 2) on fixed axes: the title in a band at
    the top, the left/right legend and the counter in a band at the bottom (`labels`), the figure between."""
    keypoints = check_keypoints(keypoints, parents)  # (T, J, 2)
    size = whole_number("size", size, minimum=64, why="pixels, e.g. size=480")
    fps = None if fps is None else frame_rate(fps)
    if names is not None and len(names) != len(parents):
        raise UserError(
            f"names has {len(names)} entries but the skeleton has {len(parents)} joints; pass matching names."
        )
    bounds = common_bounds([keypoints]) if bounds is None else bounds
    top, bottom = title_height(size) if title else 0, labels_height(size) if labels else 0
    pixels = to_pixels(keypoints, bounds, size, top, bottom)  # (T, J, 2)
    ground = float(to_pixels(np.zeros(2), bounds, size, top, bottom)[1]) if bounds[2] <= 0 <= bounds[3] else None
    sides = [side_of(n) for n in names] if names is not None else ["centre"] * len(parents)
    colours = [BONE_COLOURS[side] for side in sides]
    head = head_ring(pixels, parents, names)
    legend = legend_sides(side for j, side in enumerate(sides) if parents[j] >= 0)

    def paint(index: int) -> np.ndarray:
        image = draw_frame(pixels[index], parents, colours, size, ground, title, head)
        if labels:
            draw_labels(image, counter_texts(index, len(pixels), fps), legend, size - bottom)
        return np.asarray(image)

    return paint


def render_frames(
    keypoints, parents, bounds=None, size: int = VIDEO_SIZE, title=None, names=None, fps=None, labels: bool = True
) -> np.ndarray:
    """Frames (T, size, size, 3) uint8 of a skeleton, fixed axes; left/right bones coloured when `names` is given."""
    paint = frame_painter(keypoints, parents, bounds, size, title, names, fps, labels)
    return np.stack([paint(i) for i in range(len(keypoints))])


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

    path, fps = Path(path), frame_rate(fps)
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
    path, keypoints, parents, fps, bounds=None, size: int = VIDEO_SIZE, title=None, names=None, overwrite: bool = False
) -> Path:
    """Render keypoints (T, J, 2), frame by frame, into an mp4 with a title, legend and counter."""
    fps = frame_rate(fps)
    paint = frame_painter(keypoints, parents, bounds=bounds, size=size, title=title, names=names, fps=fps)
    return write_frames(path, paint, len(keypoints), fps, overwrite)


def grid_shape(count: int) -> tuple:
    """(rows, cols) of a near-square grid holding `count` tiles."""
    cols = math.ceil(math.sqrt(count))
    return math.ceil(count / cols), cols


def grid_tile_size(count: int) -> int:
    """Even tile side for a grid of `count` tiles: about GRID_WIDTH wide, within [GRID_TILE_MIN, GRID_TILE_MAX]."""
    _, cols = grid_shape(count)
    return 2 * (min(GRID_TILE_MAX, max(GRID_TILE_MIN, GRID_WIDTH // cols)) // 2)


def tile(tiles: list) -> np.ndarray:
    """One grid frame (rows*S, cols*S, 3) from equal-sized tiles (S, S, 3), row by row; empty cells background."""
    rows, cols = grid_shape(len(tiles))
    size = tiles[0].shape[0]
    grid = np.empty((rows * size, cols * size, 3), dtype=np.uint8)
    grid[:] = np.array(BACKGROUND, dtype=np.uint8)
    for i, image in enumerate(tiles):
        r, c = divmod(i, cols)
        grid[r * size : (r + 1) * size, c * size : (c + 1) * size] = image
    grid[size - 1 :: size] = grid[:, size - 1 :: size] = np.array(BORDER, dtype=np.uint8)  # lines between tiles
    return grid


def grid_painter(keypoint_list, parents, size=None, titles=None, names=None, fps=None, labels: bool = True):
    """(a function i -> grid frame i, frame count) tiling every sample (each (T, J, 2), same T) on shared bounds."""
    if len(keypoint_list) == 0:
        raise UserError("write_grid_video got no samples; pass a non-empty list of (frames, joints, 2) arrays.")
    arrays = [check_keypoints(k, parents) for k in keypoint_list]
    if len({len(a) for a in arrays}) != 1:
        raise UserError(
            f"grid samples differ in length {sorted({len(a) for a in arrays})}; pass samples of equal frame count."
        )
    if titles is not None and len(titles) != len(arrays):
        raise UserError(f"titles has {len(titles)} entries for {len(arrays)} samples; pass one title per sample.")
    size = grid_tile_size(len(arrays)) if size is None else size
    bounds = common_bounds(arrays)
    painters = [
        frame_painter(a, parents, bounds, size, None if titles is None else titles[i], names, fps, labels)
        for i, a in enumerate(arrays)
    ]
    return (lambda index: tile([paint(index) for paint in painters])), len(arrays[0])


def render_grid(keypoint_list, parents, size=None, titles=None, names=None, fps=None, labels: bool = True):
    """Frames (T, H, W, 3) tiling every sample (each (T, J, 2), same T) with shared bounds; size=None sizes the
    tiles for the grid (grid_tile_size)."""
    paint, count = grid_painter(keypoint_list, parents, size, titles, names, fps, labels)
    return np.stack([paint(i) for i in range(count)])


def write_grid_video(
    path, keypoint_list, parents, fps, size=None, titles=None, names=None, overwrite: bool = False
) -> Path:
    """One mp4 tiling all samples in a near-square grid on shared axes; size=None sizes the tiles for the grid."""
    fps = frame_rate(fps)
    paint, count = grid_painter(keypoint_list, parents, size=size, titles=titles, names=names, fps=fps)
    return write_frames(path, paint, count, fps, overwrite)

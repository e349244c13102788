"""Headless videos of a 3D stick figure: a fixed perspective camera, a checkered ground, PIL frames, mp4 via moviepy.

World: metres, y up, the person initially faces +Z (HumanML3D), so their left is +X. One camera is chosen per
video from the whole clip's extent (front-right of the person, a little above, far enough to keep every frame in
view) and never moves, so travel shows as the figure crossing the ground. Everything static (ground, root path,
caption) is drawn once; each frame adds the figure's shadow, its bones and joints in painter's order, and a band at
the bottom with the left/right colour legend and the frame counter ("frame 12/48 · 0.4 s"). A caption per frame
(`captions`, e.g. a timeline's active prompt) is drawn on each frame instead of once.
"""

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from motiondiff.core.checks import frame_rate, whole_number
from motiondiff.core.errors import UserError
from motiondiff.render.skeleton_video import (
    BACKGROUND,
    BONE_COLOURS,
    BORDER,
    JOINT_COLOUR,
    TEXT,
    counter_texts,
    draw_labels,
    labels_height,
    legend_sides,
    side_of,
    write_frames,
)

TILE_COLOURS = ((226, 226, 219), (206, 206, 197))  # the ground's checker
TRAJECTORY = (150, 150, 190)
SHADOW = (178, 178, 170)
HEAD_FILL = (250, 250, 247)
TILE_METRES = 0.5
MAX_TILES = 80  # tiles along one side of the ground at most
NEAR = 0.05  # metres: nothing nearer the camera than this is drawn
BONE_RADIUS = 0.022  # metres: bones are drawn this thick in perspective
JOINT_RADIUS = 0.03
HEAD_RADIUS = 0.1
HEAD_ROOM = 2 * HEAD_RADIUS  # metres kept in view above every joint, for the head ring
UP = np.array([0.0, 1.0, 0.0])


@dataclass(frozen=True)
class Camera:
    """A fixed pinhole camera: where it is, what it looks at (y stays up on screen), vertical field of view."""

    position: tuple
    target: tuple
    fov_deg: float = 40.0

    def basis(self) -> tuple:
        """(right, up, back) unit vectors of the camera in world coordinates; it looks along -back."""
        back = np.asarray(self.position, float) - np.asarray(self.target, float)  # (3,)
        back /= np.linalg.norm(back)
        right = np.cross(UP, back)  # (3,)
        assert np.linalg.norm(right) > 1e-6, "the camera must not look straight up or down"
        right /= np.linalg.norm(right)
        return right, np.cross(back, right), back

    def focal(self, height: float) -> float:
        """Focal length in pixels for a view `height` pixels tall."""
        return 0.5 * height / math.tan(math.radians(self.fov_deg) / 2)

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """World points (..., 3) to camera coordinates (..., 3): right, up, depth in front of the camera."""
        right, up, back = self.basis()
        rel = np.asarray(points, float) - np.asarray(self.position, float)  # (..., 3)
        return np.stack([rel @ right, rel @ up, -(rel @ back)], axis=-1)

    def project(self, points: np.ndarray, width: int, height: int, top: int = 0) -> tuple:
        """(pixels (..., 2), depth (...)) of world points in a width x height view whose top row is image row `top`."""
        cam = self.to_camera(points)  # (..., 3)
        depth = cam[..., 2]
        safe = np.maximum(depth, NEAR)  # points behind the camera get finite (unused) pixels
        f = self.focal(height)
        pixels = np.stack([0.5 * width + f * cam[..., 0] / safe, top + 0.5 * height - f * cam[..., 1] / safe], axis=-1)
        return pixels, depth


def fit_camera(
    joints: np.ndarray,
    aspect: float = 1.0,
    azimuth_deg: float = 35.0,
    elevation_deg: float = 18.0,
    fov_deg: float = 40.0,
    fill: float = 0.85,
) -> Camera:
    """The fixed camera for a clip (T, J, 3): front-right of the person and above, nearest that keeps all in view.

    With the viewing direction fixed, a point (x, y, z) relative to the camera's axes stays in view when
    |x - a| <= tan_x * (d - z) (same for y with b): linear in the camera's sideways shift a, b and distance d,
    so the tightest framing has a closed form per axis; `fill` leaves a margin round the clip.
    """
    joints = np.asarray(joints, float).reshape(-1, 3)  # (T*J, 3)
    ground = joints * np.array([1.0, 0.0, 1.0])  # (T*J, 3): the shadows keep the floor in view
    points = np.concatenate([joints, joints + HEAD_ROOM * UP, ground])  # (N, 3)
    centre = 0.5 * (points.min(0) + points.max(0))  # (3,)
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    back = np.array([-math.sin(az) * math.cos(el), math.sin(el), math.cos(az) * math.cos(el)])  # person's right, front
    right, up, _ = Camera(tuple(centre + back), tuple(centre), fov_deg).basis()
    rel = points - centre  # (N, 3)
    along = rel @ back  # (N,): towards the camera
    tan_y = math.tan(math.radians(fov_deg) / 2) * fill
    axes = ((right, rel @ right, tan_y * aspect), (up, rel @ up, tan_y))  # (axis, offsets (N,), half-view tangent)
    distance = max([1.0] + [0.5 * ((x + tan * along).max() + (tan * along - x).max()) / tan for _, x, tan in axes])
    target = centre.copy()  # (3,)
    for axis, x, tan in axes:  # the shift that centres the clip on screen, by bisection within the allowed ones
        lowest, highest = (x - tan * (distance - along)).max(), (x + tan * (distance - along)).min()
        assert lowest <= highest + 1e-6 * (1 + distance), "the distance leaves no room for a shift"
        for _ in range(40):
            middle = 0.5 * (lowest + highest)
            screen = (x - middle) / (distance - along)  # (N,): screen offsets, proportional to pixels
            lowest, highest = (middle, highest) if screen.max() + screen.min() > 0 else (lowest, middle)
        target += 0.5 * (lowest + highest) * axis
    return Camera(tuple(float(v) for v in target + distance * back), tuple(float(v) for v in target), fov_deg)


def check_joints(joints, parents=None) -> np.ndarray:
    """Joints as a float array (T, J, 3); UserError on a wrong shape, NaN/inf or a parents list that does not fit."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[-1] != 3 or joints.shape[0] < 1 or joints.shape[1] < 1:
        raise UserError(f"joints must have shape (frames, joints, 3) in metres, got {joints.shape}; pass 3D positions.")
    if not np.isfinite(joints).all():
        raise UserError("joints contain NaN or infinite values; clean or interpolate them before rendering.")
    if parents is not None:
        if len(parents) != joints.shape[1]:
            raise UserError(
                f"parents has {len(parents)} entries but joints have {joints.shape[1]} joints; pass the matching tree."
            )
        if any(not -1 <= int(p) < j for j, p in enumerate(parents)):
            raise UserError(f"parents {tuple(parents)} must hold -1 or an earlier joint's index; pass the skeleton's.")
    return joints


def check_size(size, what: str = "size") -> tuple:
    """(width, height) as ints; UserError unless both are whole numbers of pixels >= 64."""
    try:
        width, height = size
        ok = int(width) == width and int(height) == height and width >= 64 and height >= 64
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise UserError(
            f"{what} must be (width, height) in whole pixels, each >= 64, got {size!r}; pass e.g. (480, 480)."
        )
    return int(width), int(height)


@functools.lru_cache(maxsize=16)
def font(pixels: int):
    """PIL's built-in font at a pixel size."""
    return ImageFont.load_default(size=pixels)


def wrap_caption(text: str, typeface, width: float, max_lines: int = 3) -> list:
    """Lines of `text` no wider than `width` pixels (greedy by words, long words split), at most max_lines."""
    lines, current = [], ""
    for word in str(text).split():
        while typeface.getlength(word) > width and len(word) > 1:  # a word wider than the line: split it
            cut = max(1, next((n for n in range(len(word), 0, -1) if typeface.getlength(word[:n]) <= width), 1))
            if current:
                lines.append(current)
                current = ""
            lines.append(word[:cut])
            word = word[cut:]
        candidate = f"{current} {word}".strip()
        if typeface.getlength(candidate) <= width:
            current = candidate
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        while last and typeface.getlength(last + "...") > width:
            last = last[:-1]
        lines = lines[: max_lines - 1] + [last.rstrip() + "..."]
    return lines


def clip_to_near(polygon: np.ndarray) -> np.ndarray:
    """A camera-space polygon (V, 3) cut to the part in front of the near plane (V', 3); V' may be 0."""
    kept = []
    for a, b in zip(polygon, np.roll(polygon, -1, axis=0)):
        if a[2] >= NEAR:
            kept.append(a)
        if (a[2] >= NEAR) != (b[2] >= NEAR):
            kept.append(a + (NEAR - a[2]) / (b[2] - a[2]) * (b - a))
    return np.array(kept).reshape(-1, 3)


def ground_tiles(joints: np.ndarray) -> list:
    """(corners (4, 3), parity) for checker tiles on y=0 covering the clip's floor area plus a wide margin."""
    xz = joints[..., [0, 2]].reshape(-1, 2)  # (N, 2)
    low, high = xz.min(0), xz.max(0)
    margin = max(2.5, 0.6 * float((high - low).max()))
    span = float((high - low).max()) + 2 * margin
    tile = TILE_METRES * 2 ** max(0, math.ceil(math.log2(span / (MAX_TILES * TILE_METRES))))  # coarser on huge floors
    first = np.floor((low - margin) / tile).astype(int)
    last = np.ceil((high + margin) / tile).astype(int)
    tiles = []
    for i in range(first[0], last[0]):
        for k in range(first[1], last[1]):
            x0, z0, x1, z1 = i * tile, k * tile, (i + 1) * tile, (k + 1) * tile
            corners = np.array([[x0, 0, z0], [x1, 0, z0], [x1, 0, z1], [x0, 0, z1]], float)
            tiles.append((corners, (i + k) % 2))
    return tiles


class StickFigureView:
    """Draws one clip (T, J, 3) frame by frame into a width x height image with a fixed camera: the caption (or one
    caption per frame, `captions`) in a band at the top, the legend and frame counter (time too when fps is given) in a
    band at the bottom (`labels`)."""

    def __init__(
        self,
        joints,
        parents,
        caption="",
        names=None,
        camera=None,
        size=(480, 480),
        labels=True,
        fps=None,
        captions=None,
    ):
        self.joints = check_joints(joints, parents)  # (T, J, 3)
        self.parents = tuple(int(p) for p in parents)
        if names is not None and len(names) != len(self.parents):
            raise UserError(f"names has {len(names)} entries for {len(self.parents)} joints; pass one name per joint.")
        if captions is not None and len(captions) != len(self.joints):
            count = len(self.joints)
            raise UserError(f"captions has {len(captions)} entries for {count} frames; pass one caption per frame.")
        self.captions = None if captions is None else [str(text) for text in captions]
        if camera is not None and not isinstance(camera, Camera):
            raise UserError(f"camera must be a motiondiff.render.stick3d.Camera or None, got {type(camera).__name__}.")
        self.width, self.height = check_size(size)
        self.fps = None if fps is None else frame_rate(fps)
        self.footer = labels_height(self.width) if labels else 0  # rows reserved for the legend and counter
        self.caption_font = font(max(10, self.width // 26))
        line_height = self.caption_font.size + 3
        max_lines = min(3, (self.height // 2 - self.footer - 6) // line_height)  # the view keeps half the height
        texts = dict.fromkeys(self.captions) if self.captions is not None else [caption]
        self.wrapped = {  # each caption's lines; the band fits the longest
            text: wrap_caption(text, self.caption_font, self.width - 12, max_lines) if text and max_lines else []
            for text in texts
        }
        lines = max(self.wrapped.values(), key=len)
        self.line_height = line_height
        self.top = 6 + len(lines) * line_height if lines else 0  # rows reserved for the caption
        self.view_height = self.height - self.top - self.footer
        assert self.view_height > 0, "the caption and labels took the whole frame"
        self.camera = camera or fit_camera(self.joints, aspect=self.width / self.view_height)
        sides = [side_of(n) for n in names] if names is not None else ["centre"] * len(self.parents)
        self.colours = [BONE_COLOURS[side] for side in sides]
        self.legend = legend_sides(side for j, side in enumerate(sides) if self.parents[j] >= 0)
        self.head = list(names).index("head") if names is not None and "head" in names else None
        self.focal = self.camera.focal(self.view_height)
        self.background = self.draw_background(lines if self.captions is None else [], line_height)

    def __len__(self) -> int:
        return len(self.joints)

    def project(self, points: np.ndarray) -> tuple:
        """(pixels (..., 2), depth (...)) of world points in this view."""
        return self.camera.project(points, self.width, self.view_height, self.top)

    def draw_background(self, lines, line_height) -> Image.Image:
        """The static layer: checkered ground, the root's path on the ground, the caption."""
        image = Image.new("RGB", (self.width, self.height), BACKGROUND)
        draw = ImageDraw.Draw(image)
        f, cx, cy = self.focal, 0.5 * self.width, self.top + 0.5 * self.view_height
        for corners, parity in ground_tiles(self.joints):
            cam = clip_to_near(self.camera.to_camera(corners))  # (V, 3)
            if len(cam) >= 3:
                polygon = [(cx + f * x / z, cy - f * y / z) for x, y, z in cam]
                draw.polygon(polygon, fill=TILE_COLOURS[parity])
        root = self.parents.index(-1)
        path = self.joints[:, root] * np.array([1.0, 0.0, 1.0]) + np.array([0.0, 0.002, 0.0])  # (T, 3)
        pixels, depth = self.project(path)
        visible = [tuple(p) for p, d in zip(pixels, depth) if d > NEAR]
        if len(visible) >= 2:
            draw.line(visible, fill=TRAJECTORY, width=max(1, self.width // 240), joint="curve")
        if self.top:  # the caption band stays plain even where the ground would reach into it
            draw.rectangle([0, 0, self.width, self.top], fill=BACKGROUND)
        for i, line in enumerate(lines):
            draw.text((6, 4 + i * line_height), line, fill=TEXT, font=self.caption_font)
        return image

    def frame(self, index: int, ended: bool = False) -> np.ndarray:
        """Frame `index` (H, W, 3) uint8; `ended` shows 'end' in the counter (a clip holding its last frame)."""
        image = self.background.copy()
        draw = ImageDraw.Draw(image)
        for i, line in enumerate(self.wrapped[self.captions[index]] if self.captions is not None else []):
            draw.text((6, 4 + i * self.line_height), line, fill=TEXT, font=self.caption_font)
        joints = self.joints[index]  # (J, 3)
        bones = [(p, j) for j, p in enumerate(self.parents) if p >= 0]
        shadow, shadow_depth = self.project(joints * np.array([1.0, 0.0, 1.0]))  # (J, 2), (J,)
        shadow_widths = self.thickness(BONE_RADIUS, shadow_depth)  # (J,)
        for p, j in bones:
            if min(shadow_depth[p], shadow_depth[j]) > NEAR:
                draw.line([tuple(shadow[p]), tuple(shadow[j])], fill=SHADOW, width=int(shadow_widths[j]))
        pixels, depth = self.project(joints)
        bone_widths, dot_widths = self.thickness(BONE_RADIUS, depth), self.thickness(JOINT_RADIUS, depth)  # (J,) each
        for _, kind, a, b in sorted(self.figure_items(bones, depth), reverse=True):  # farthest first
            if kind == "bone":
                draw.line([tuple(pixels[a]), tuple(pixels[b])], fill=self.colours[b], width=int(bone_widths[b]))
            elif kind == "head":
                self.draw_head(draw, joints, a)
            else:
                r = 0.5 * int(dot_widths[a])
                (x, y) = pixels[a]
                draw.ellipse([x - r, y - r, x + r, y + r], fill=JOINT_COLOUR)
        if self.footer:
            counters = counter_texts(index, len(self), self.fps, ended)
            draw_labels(image, counters, self.legend, self.height - self.footer)
        return np.asarray(image)

    def figure_items(self, bones, depth) -> list:
        """(depth, kind, a, b) for each visible bone, joint dot and the head; dots sort just before their bones."""
        items = [(0.5 * (depth[p] + depth[j]), "bone", p, j) for p, j in bones if min(depth[p], depth[j]) > NEAR]
        items += [(depth[j] - 0.01, "joint", j, j) for j in range(len(depth)) if depth[j] > NEAR and j != self.head]
        if self.head is not None and depth[self.head] > NEAR:
            items.append((depth[self.head] - 0.02, "head", self.head, self.head))
        return items

    def thickness(self, radius_metres: float, depth: np.ndarray) -> np.ndarray:
        """Pixel widths (...) of something `radius_metres` thick seen at each depth (...), at least 2 px."""
        return np.asarray(np.maximum(2, np.round(2 * radius_metres * self.focal / np.maximum(depth, NEAR))), dtype=int)

    def draw_head(self, draw: ImageDraw.ImageDraw, joints: np.ndarray, head: int) -> None:
        """A ring for the head, centred a little beyond the head joint along the neck."""
        neck = joints[self.parents[head]] if self.parents[head] >= 0 else joints[head] - UP
        direction = joints[head] - neck
        direction = direction / max(np.linalg.norm(direction), 1e-6)
        centre = joints[head] + 0.04 * direction  # (3,)
        (x, y), depth = self.project(centre)
        r = HEAD_RADIUS * self.focal / max(float(depth), NEAR)
        draw.ellipse(
            [x - r, y - r, x + r, y + r],
            fill=HEAD_FILL,
            outline=BONE_COLOURS["centre"],
            width=int(self.thickness(BONE_RADIUS * 0.7, np.asarray(depth))),
        )


def render_stick3d_frames(
    joints, parents, caption: str = "", names=None, camera=None, size=(480, 480), labels: bool = True, fps=None
) -> list:
    """Every frame of a clip (T, J, 3) as a list of (H, W, 3) uint8 arrays."""
    view = StickFigureView(joints, parents, caption, names, camera, size, labels, fps)
    return [view.frame(i) for i in range(len(view))]


def write_stick3d_video(
    path,
    joints,
    parents,
    fps,
    caption: str = "",
    names=None,
    camera=None,
    size=(480, 480),
    overwrite: bool = False,
    captions=None,
) -> Path:
    """Render a clip (T, J, 3) with a fixed camera and write it as an mp4; `captions` (T strings) replace `caption`."""
    fps = frame_rate(fps)
    view = StickFigureView(joints, parents, caption, names, camera, size, fps=fps, captions=captions)
    return write_frames(path, view.frame, len(view), fps, overwrite)


def write_stick3d_grid(
    path, joints_list, parents, fps, captions, names=None, columns=None, cell_size=(320, 320), overwrite: bool = False
) -> Path:
    """One mp4 tiling clips (each (T_i, J, 3), own fixed camera) row by row; finished clips hold their last frame."""
    fps = frame_rate(fps)
    if len(joints_list) == 0:
        raise UserError("write_stick3d_grid got no clips; pass a non-empty list of (frames, joints, 3) arrays.")
    if captions is None or len(captions) != len(joints_list):
        count = None if captions is None else len(captions)
        raise UserError(f"captions has {count} entries for {len(joints_list)} clips; pass one caption per clip.")
    if columns is None:
        columns = math.ceil(math.sqrt(len(joints_list)))
    columns = min(whole_number("columns", columns, why="e.g. columns=3, or None"), len(joints_list))
    width, height = check_size(cell_size, "cell_size")
    views = [
        StickFigureView(j, parents, c, names, None, (width, height), fps=fps) for j, c in zip(joints_list, captions)
    ]
    rows = math.ceil(len(views) / columns)
    longest = max(len(v) for v in views)

    def frame_at(i: int) -> np.ndarray:
        grid = np.empty((rows * height, columns * width, 3), dtype=np.uint8)  # (H, W, 3)
        grid[:] = np.array(BACKGROUND, dtype=np.uint8)
        for n, view in enumerate(views):
            r, c = divmod(n, columns)
            cell = grid[r * height : (r + 1) * height, c * width : (c + 1) * width]
            cell[:] = view.frame(min(i, len(view) - 1), ended=i >= len(view))
            cell[:, -1] = cell[-1, :] = np.array(BORDER, dtype=np.uint8)  # thin separators between cells
        return grid

    return write_frames(path, frame_at, longest, fps, overwrite)

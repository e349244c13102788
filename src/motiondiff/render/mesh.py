"""Shaded mesh videos on the CPU: a numpy z-buffer rasteriser under the 3D stick figures' camera, ground and labels.

Why not pyrender or moderngl: both draw through OpenGL, which runs headless only on OSMesa or EGL, system
libraries that pip cannot install and CI machines lack. This renderer needs numpy and pillow only, so it runs
wherever the tests run. It keeps the stick figure videos' conventions (render/stick3d.py): one camera fitted to
the whole clip from the front-right and above that never moves, the checkered ground with the path travelled,
the caption in a band at the top, the frame counter in a band at the bottom, 480 px, mp4 through moviepy. The
mesh replaces the bones: each triangle's pixels are depth-tested in a z-buffer (rendered at 2x and averaged,
for smooth edges), shaded by Lambert's law from one light above and behind the camera plus ambient light, with
normals interpolated from the vertices (smooth shading, lit from whichever side faces the camera), over the
mesh's shadow flattened on the ground.

World: metres, y up (HumanML3D's and SMPL's frame). Vertices (T, V, 3), faces (F, 3) vertex indices.
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from motiondiff.core.checks import frame_rate
from motiondiff.core.errors import UserError
from motiondiff.core.files import write_new_file
from motiondiff.render.skeleton_video import (
    BACKGROUND,
    TEXT,
    VIDEO_SIZE,
    counter_texts,
    draw_labels,
    labels_height,
    write_frames,
)
from motiondiff.render.stick3d import (
    NEAR,
    SHADOW,
    TILE_COLOURS,
    TRAJECTORY,
    Camera,
    check_size,
    clip_to_near,
    fit_camera,
    font,
    ground_tiles,
    wrap_caption,
)

BODY = np.array([150, 178, 218]) / 255.0  # the mesh's colour, lit fully
AMBIENT, DIFFUSE = 0.38, 0.68
LIGHT = (0.35, 0.8, 0.5)  # towards the light in the camera's (right, up, back) axes: above, right, behind the camera
SUPERSAMPLE = 2  # pixels per output pixel along each side
MAX_FRAGMENTS = 2_000_000  # candidate pixels rasterised at once (bounds memory on huge triangles)
FRAMING_POINTS = 400  # vertices per frame used to fit the camera (with each frame's extremes)


def check_mesh(vertices, faces) -> tuple:
    """(vertices (T, V, 3) float64, faces (F, 3) int64); UserError on wrong shapes, NaN or out-of-range indices."""
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces)
    if vertices.ndim != 3 or vertices.shape[-1] != 3 or len(vertices) < 1 or vertices.shape[1] < 3:
        raise UserError(f"mesh vertices must have shape (frames, vertices, 3) in metres, got {vertices.shape}.")
    if not np.isfinite(vertices).all():
        raise UserError("mesh vertices contain NaN or infinite values; clean them before rendering.")
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) < 1 or not np.issubdtype(faces.dtype, np.integer):
        raise UserError(f"mesh faces must be integer vertex indices of shape (faces, 3), got {faces.shape}.")
    if faces.min() < 0 or faces.max() >= vertices.shape[1]:
        raise UserError(f"mesh faces index vertices {faces.min()}..{faces.max()} of {vertices.shape[1]}; fix them.")
    return vertices, faces.astype(np.int64)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit normals (V, 3) of vertices (V, 3): the area-weighted sum of their faces' normals."""
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    face_normals = np.cross(b - a, c - a)  # (F, 3), length = twice the area
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, faces[:, k], face_normals)
    return normals / np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-12)


def fragments(pixels: np.ndarray, faces: np.ndarray, width: int, height: int):
    """Yield (face (N,), pixel index (N,), barycentric weights (N, 3)) for pixel centres inside each triangle."""
    corners = pixels[faces]  # (F, 3, 2)
    low = np.clip(np.ceil(corners.min(axis=1) - 0.5), 0, [width, height]).astype(np.int64)  # (F, 2) first pixel
    high = np.clip(np.floor(corners.max(axis=1) - 0.5), -1, [width - 1, height - 1]).astype(np.int64)
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])  # (F,) signed, x2
    span = np.maximum(high - low + 1, 0)  # (F, 2) pixels across, down
    counts = np.where(np.abs(area) > 1e-12, span[:, 0] * span[:, 1], 0)  # (F,)
    ends = np.cumsum(counts)  # (F,): fragments up to and including each face
    start = 0
    while start < len(faces):
        before = ends[start] - counts[start]
        stop = max(start + 1, int(np.searchsorted(ends, before + MAX_FRAGMENTS, side="right")))
        chunk = np.arange(start, min(stop, len(faces)))
        face = np.repeat(chunk, counts[chunk])  # (N,)
        offset = np.arange(len(face)) - np.repeat(ends[chunk] - counts[chunk] - before, counts[chunk])  # in its box
        x = low[face, 0] + offset % span[face, 0]
        y = low[face, 1] + offset // span[face, 0]
        px, py = x + 0.5, y + 0.5
        fa, fb, fc = a[face], b[face], c[face]  # (N, 2) each
        w0 = (fb[:, 0] - px) * (fc[:, 1] - py) - (fb[:, 1] - py) * (fc[:, 0] - px)  # twice the opposite areas
        w1 = (fc[:, 0] - px) * (fa[:, 1] - py) - (fc[:, 1] - py) * (fa[:, 0] - px)
        w2 = area[face] - w0 - w1
        sign = np.sign(area[face])
        inside = (w0 * sign >= 0) & (w1 * sign >= 0) & (w2 * sign >= 0)  # whichever way the triangle winds
        weights = np.stack([w0[inside], w1[inside], w2[inside]], axis=-1) / area[face[inside], None]  # barycentric
        yield face[inside], (y * width + x)[inside], weights
        start = int(chunk[-1]) + 1


def rasterise(pixels: np.ndarray, depth: np.ndarray, faces: np.ndarray, width: int, height: int) -> tuple:
    """The nearest surface at each pixel: (face (H*W,) or -1, perspective-correct barycentric weights (H*W, 3))."""
    nearness = np.zeros(width * height)  # 1 / depth of the nearest surface so far; 0 = nothing
    owner = np.full(width * height, -1)
    barycentric = np.zeros((width * height, 3))
    inverse = 1.0 / np.maximum(depth, NEAR)  # (V,): 1/depth is linear across a projected triangle
    for face, pixel, weights in fragments(pixels, faces, width, height):
        corrected = weights * inverse[faces[face]]  # (N, 3)
        near = corrected.sum(axis=-1)  # (N,)
        np.maximum.at(nearness, pixel, near)
        won = near >= nearness[pixel]
        owner[pixel[won]] = face[won]
        barycentric[pixel[won]] = corrected[won] / near[won, None]
    return owner, barycentric


def coverage(pixels: np.ndarray, faces: np.ndarray, width: int, height: int) -> np.ndarray:
    """A mask (H*W,) of the pixels some triangle covers."""
    covered = np.zeros(width * height, dtype=bool)
    for _, pixel, _ in fragments(pixels, faces, width, height):
        covered[pixel] = True
    return covered


def downsample(values: np.ndarray, height: int, width: int) -> np.ndarray:
    """Values (height*S * width*S, C) averaged over SUPERSAMPLE x SUPERSAMPLE blocks: (height, width, C)."""
    grid = values.reshape(height * SUPERSAMPLE, width * SUPERSAMPLE, -1)
    blocks = [grid[i::SUPERSAMPLE, j::SUPERSAMPLE] for i in range(SUPERSAMPLE) for j in range(SUPERSAMPLE)]
    return sum(blocks) / len(blocks)


class MeshView:
    """Draws one mesh clip frame by frame into a size x size image with the stick figures' camera and labels."""

    def __init__(self, vertices, faces, caption: str = "", size: int = VIDEO_SIZE, fps=None, camera=None):
        self.vertices, self.faces = check_mesh(vertices, faces)
        self.width, self.height = check_size((size, size))
        self.fps = None if fps is None else frame_rate(fps)
        if camera is not None and not isinstance(camera, Camera):
            raise UserError(f"camera must be a motiondiff.render.stick3d.Camera or None, got {type(camera).__name__}.")
        self.footer = labels_height(self.width)
        typeface = font(max(10, self.width // 26))
        line_height = typeface.size + 3
        max_lines = min(3, (self.height // 2 - self.footer - 6) // line_height)
        lines = wrap_caption(caption, typeface, self.width - 12, max_lines) if caption and max_lines else []
        self.top = 6 + len(lines) * line_height if lines else 0
        self.view_height = self.height - self.top - self.footer
        points = self.framing_points()  # (T, K, 3)
        self.camera = camera or fit_camera(points, aspect=self.width / self.view_height)
        self.light = np.array(LIGHT) @ np.stack(self.camera.basis())  # (3,) world direction towards the light
        self.light /= np.linalg.norm(self.light)
        self.background = self.draw_background(points, lines, typeface, line_height)

    def __len__(self) -> int:
        return len(self.vertices)

    def framing_points(self) -> np.ndarray:
        """Points (T, K, 3) that outline the clip: a spread of vertices and each frame's extremes along x, y, z."""
        step = max(1, self.vertices.shape[1] // FRAMING_POINTS)
        extremes = np.concatenate([self.vertices.argmin(axis=1), self.vertices.argmax(axis=1)], axis=1)  # (T, 6)
        outline = np.take_along_axis(self.vertices, extremes[..., None], axis=1)  # (T, 6, 3)
        return np.concatenate([self.vertices[:, ::step], outline], axis=1)

    def project(self, points: np.ndarray, scale: int = 1) -> tuple:
        """(pixels (..., 2), depth (...)) of world points in the view, `scale` times the output resolution."""
        return self.camera.project(points, self.width * scale, self.view_height * scale)

    def draw_background(self, points, lines, typeface, line_height) -> Image.Image:
        """The static layer: checkered ground, the path of the mesh's centre on the ground, the caption."""
        image = Image.new("RGB", (self.width, self.height), BACKGROUND)
        draw = ImageDraw.Draw(image)
        f, cx, cy = self.camera.focal(self.view_height), 0.5 * self.width, self.top + 0.5 * self.view_height
        for corners, parity in ground_tiles(points):
            cam = clip_to_near(self.camera.to_camera(corners))  # (V, 3)
            if len(cam) >= 3:
                draw.polygon([(cx + f * x / z, cy - f * y / z) for x, y, z in cam], fill=TILE_COLOURS[parity])
        path = self.vertices.mean(axis=1) * np.array([1.0, 0.0, 1.0]) + np.array([0.0, 0.002, 0.0])  # (T, 3)
        pixels, depth = self.project(path)
        visible = [(x, y + self.top) for (x, y), d in zip(pixels, depth) if d > NEAR]
        if len(visible) >= 2:
            draw.line(visible, fill=TRAJECTORY, width=max(1, self.width // 240), joint="curve")
        if self.top:  # the caption band stays plain even where the ground would reach into it
            draw.rectangle([0, 0, self.width, self.top - 1], fill=BACKGROUND)
        draw.rectangle([0, self.height - self.footer, self.width, self.height], fill=BACKGROUND)
        for i, line in enumerate(lines):
            draw.text((6, 4 + i * line_height), line, fill=TEXT, font=typeface)
        return image

    def shaded(self, vertices: np.ndarray) -> tuple:
        """(colour premultiplied by coverage (H', W', 3), coverage (H', W', 1)) of the mesh in the view."""
        s, width, height = SUPERSAMPLE, self.width * SUPERSAMPLE, self.view_height * SUPERSAMPLE
        pixels, depth = self.project(vertices, s)  # (V, 2), (V,)
        faces = self.faces[(depth[self.faces] > NEAR).all(axis=1)]
        owner, weights = rasterise(pixels, depth, faces, width, height)
        hit = owner >= 0
        normals = vertex_normals(vertices, self.faces)  # (V, 3)
        normal = np.einsum("nk,nkd->nd", weights[hit], normals[faces[owner[hit]]])  # (N, 3)
        points = np.einsum("nk,nkd->nd", weights[hit], vertices[faces[owner[hit]]])  # (N, 3)
        towards_camera = np.asarray(self.camera.position) - points
        normal *= np.where(np.sum(normal * towards_camera, axis=-1, keepdims=True) < 0, -1.0, 1.0)  # two-sided
        normal /= np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-12)
        light = AMBIENT + DIFFUSE * np.clip(normal @ self.light, 0.0, 1.0)  # (N,)
        colour = np.zeros((width * height, 3))
        colour[hit] = np.clip(BODY * light[:, None], 0.0, 1.0)
        return downsample(colour, self.view_height, self.width), downsample(
            hit[:, None] * 1.0, self.view_height, self.width
        )

    def shadow(self, vertices: np.ndarray) -> np.ndarray:
        """Coverage (H', W', 1) of the mesh flattened onto the ground."""
        s = SUPERSAMPLE
        flat = vertices * np.array([1.0, 0.0, 1.0]) + np.array([0.0, 0.001, 0.0])
        pixels, depth = self.project(flat, s)
        faces = self.faces[(depth[self.faces] > NEAR).all(axis=1)]
        covered = coverage(pixels, faces, self.width * s, self.view_height * s)
        return downsample(covered[:, None] * 1.0, self.view_height, self.width)

    def frame(self, index: int) -> np.ndarray:
        """Frame `index` (H, W, 3) uint8."""
        image = np.asarray(self.background, dtype=np.float64) / 255.0  # (H, W, 3)
        view = image[self.top : self.top + self.view_height]
        shade = self.shadow(self.vertices[index])
        view[:] = view * (1 - shade) + np.array(SHADOW) / 255.0 * shade
        colour, covered = self.shaded(self.vertices[index])
        view[:] = view * (1 - covered) + colour
        picture = Image.fromarray(np.round(image * 255).astype(np.uint8))
        draw_labels(picture, counter_texts(index, len(self), self.fps), (), self.height - self.footer)
        return np.asarray(picture)


def render_mesh_frames(vertices, faces, caption: str = "", size: int = VIDEO_SIZE, fps=None) -> list:
    """Every frame of a mesh clip (T, V, 3) with faces (F, 3) as (H, W, 3) uint8 arrays."""
    view = MeshView(vertices, faces, caption, size, fps)
    return [view.frame(i) for i in range(len(view))]


def render_mesh_video(
    vertices, faces, path, fps, caption: str = "", size: int = VIDEO_SIZE, overwrite: bool = False
) -> Path:
    """Render a mesh clip (T, V, 3) with faces (F, 3) under a fixed camera and write it as an mp4."""
    fps = frame_rate(fps)
    view = MeshView(vertices, faces, caption, size, fps)
    return write_frames(path, view.frame, len(view), fps, overwrite)


def write_obj_sequence(folder, vertices, faces) -> list:
    """One Wavefront .obj per frame (frame_0000.obj, ...) in `folder`; UserError if any of them exists."""
    vertices, faces = check_mesh(vertices, faces)
    folder = Path(folder)
    paths = [folder / f"frame_{i:04d}.obj" for i in range(len(vertices))]
    existing = [path for path in paths if path.exists()]
    if existing:
        raise UserError(f"'{existing[0]}' already exists: mesh export never overwrites a file; give a new folder.")
    folder.mkdir(parents=True, exist_ok=True)
    face_lines = "".join(f"f {a} {b} {c}\n" for a, b, c in faces + 1)  # .obj counts vertices from 1
    for path, frame in zip(paths, vertices):
        text = "".join(f"v {x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in frame) + face_lines
        write_new_file(
            path, lambda temporary, text=text: temporary.write_text(text), "mesh export", "give a new folder"
        )
    return paths

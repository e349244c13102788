"""Videos of samples as generation writes them: 2D stick figures of keypoint windows, 3D stick figures of joints."""

from pathlib import Path

import numpy as np

from motiondiff.data.info import MotionData
from motiondiff.render.skeleton_video import common_bounds, write_grid_video, write_skeleton_video
from motiondiff.render.stick3d import write_stick3d_grid, write_stick3d_video


def render_samples(
    out_dir: Path,
    keypoints: np.ndarray,
    info: MotionData,
    long=None,
    long_name: str = "long_dance",
    long_title="chained windows",
) -> dict:
    """One video per sample (K, N, J, D), a grid of all, and <long_name>.mp4 of a long sequence (L, J, D) if given.

    2D keypoints are drawn flat; 3D joints (metres, y up: the 3D dance) as 3D stick figures."""
    parents, names, fps = info.parents, info.joint_names, info.fps
    if keypoints.shape[-1] == 3:
        written = render_text_samples(out_dir, list(keypoints), [f"sample {i}" for i in range(len(keypoints))], info)
        if long is not None:
            written["long_video"] = out_dir / f"{long_name}.mp4"
            write_stick3d_video(written["long_video"], long, parents, fps, caption=long_title, names=names)
        return written
    bounds = common_bounds(list(keypoints))
    written = {}
    for index, sample in enumerate(keypoints):
        path = out_dir / f"sample_{index:02d}.mp4"
        write_skeleton_video(path, sample, parents, fps, bounds=bounds, title=f"sample {index}", names=names)
        written[f"video_{index:02d}"] = path
    written["grid"] = out_dir / "grid.mp4"
    write_grid_video(
        written["grid"], list(keypoints), parents, fps, titles=[str(i) for i in range(len(keypoints))], names=names
    )
    if long is not None:
        written["long_video"] = out_dir / f"{long_name}.mp4"
        write_skeleton_video(written["long_video"], long, parents, fps, title=long_title, names=names)
    return written


def render_text_samples(out_dir: Path, clips: list, captions: list, info: MotionData) -> dict:
    """One 3D stick-figure video per clip (T, J, 3) with its caption, and a grid of all."""
    parents, names, fps = info.parents, info.joint_names, info.fps
    written = {}
    for index, (clip, caption) in enumerate(zip(clips, captions)):
        written[f"video_{index:02d}"] = out_dir / f"sample_{index:02d}.mp4"
        write_stick3d_video(written[f"video_{index:02d}"], clip, parents, fps, caption=caption, names=names)
    written["grid"] = out_dir / "grid.mp4"
    write_stick3d_grid(written["grid"], clips, parents, fps, captions=captions, names=names)
    return written

"""Absurd BVH frame times and frame counts are refused with one sentence, before any large allocation."""

import time

import pytest

from motiondiff.core.errors import UserError
from motiondiff.data.formats.bvh import load_bvh, load_bvh_keypoints


def write_bvh(tmp_path, frames: str = "2", frame_time: str = "0.033333", joints: int = 2, rows: int = 2):
    """A chain of `joints` joints (the root with 6 channels, the others 3) with `rows` motion lines."""
    lines = [
        "HIERARCHY",
        "ROOT j0",
        "{",
        "OFFSET 0 0 0",
        "CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation",
    ]
    for j in range(1, joints):
        lines += [f"JOINT j{j}", "{", "OFFSET 0 1 0", "CHANNELS 3 Zrotation Xrotation Yrotation"]
    lines += ["End Site", "{", "OFFSET 0 1 0", "}"] + ["}"] * joints
    channels = 6 + 3 * (joints - 1)
    lines += ["MOTION", f"Frames: {frames}", f"Frame Time: {frame_time}"] + [" ".join(["0"] * channels)] * rows
    path = tmp_path / "clip.bvh"
    path.write_text("\n".join(lines) + "\n")
    return path


def refused(path, match: str, **kwargs) -> str:
    """The refusal's message, checked to be quick, one line, and to name the file and `match`."""
    start = time.perf_counter()
    with pytest.raises(UserError, match=match) as caught:
        load_bvh_keypoints(path, **kwargs) if kwargs else load_bvh(path)
    assert time.perf_counter() - start < 1.0
    message = str(caught.value)
    assert f"'{path}'" in message and "\n" not in message
    return message


def test_a_plausible_file_loads(tmp_path):
    assert load_bvh(write_bvh(tmp_path)).fps == 30.0


@pytest.mark.parametrize("frame_time", ["100000", "61", "0.00001", "1e-300"])
def test_absurd_frame_times_are_refused(tmp_path, frame_time):
    message = refused(write_bvh(tmp_path, frame_time=frame_time), "is not a capture rate")
    assert "10,000 fps" in message and "set it to the seconds per frame" in message


@pytest.mark.parametrize("frame_time", ["0", "-0.03", "nan", "1e-330", "1e400"])  # 1/t overflows, or underflows
def test_zero_negative_or_nan_frame_times_are_refused(tmp_path, frame_time):
    refused(write_bvh(tmp_path, frame_time=frame_time), r"expected 'Frame Time: <seconds>' \(> 0\)")


def test_a_trillion_declared_frames_are_refused_before_reading_them(tmp_path):
    message = refused(write_bvh(tmp_path, frames=str(10**12)), "'Frames: 1000000000000'")
    assert "at most 10,000,000 frames" in message and "set Frames to the count of motion lines" in message


def test_declared_frames_needing_gigabytes_are_refused(tmp_path):
    """5 million frames of a 60-joint skeleton need about 30 GiB of transforms."""
    message = refused(write_bvh(tmp_path, frames="5000000", joints=60), "'Frames: 5000000'")
    assert "GiB" in message


def test_hours_of_declared_motion_are_refused(tmp_path):
    refused(write_bvh(tmp_path, frames="800000", frame_time="0.05"), r"11\.1 hours")


def test_resampling_to_millions_of_frames_is_refused(tmp_path):
    """Two frames 50 s apart are plausible, but at a million fps they would become 50 million frames."""
    path = write_bvh(tmp_path, frame_time="50")
    assert len(load_bvh_keypoints(path, fps=30.0, joint_map="none")[0]) == 1501
    refused(path, "would make 50,000,001 frames", fps=1e6, joint_map="none")

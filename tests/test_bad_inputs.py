"""A corpus of broken inputs, made in tmp_path: each gives one UserError of one line that names the file
(or setting) and the fix; where a reader documents skipping (the HumanML3D layout), it gives one
warning with the count and the first item instead, and the rest of the data still loads.

One table per reader. Cases already covered elsewhere are not repeated here: test_bvh.py (missing
file, CSV text, a frame cut mid-line, a missing frame, no MOTION, a word among the numbers, the
channel 'Wrotation', joint maps), test_dance_data.py (last axis 3, rank 2, NaN, 7 joints without
parents, too short for the window, missing file, other suffix, pickled objects, bad settings),
test_text_motion_data.py (missing root, split, Mean.npy; a split of missing motions; 251 features;
NaN, missing features, too short, empty caption lines, captionless motions skipped) and
test_text_encoders.py (precomputed: missing file, other dim, rank 1, too few rows, wrong layout).
"""

import io
import logging
import re
import shutil

import numpy as np
import pytest

from motiondiff.core.errors import UserError
from motiondiff.data.dance_windows import DanceDataModule
from motiondiff.data.formats.bvh import load_bvh
from motiondiff.data.text_motion import TextMotionDataModule
from motiondiff.text import CaptionItem, PrecomputedEncoder
from test_bvh import tiny
from test_text_motion_data import FakeEncoder, line, motion, write_humanml3d


def assert_one_clear_line(error: UserError, message: str, *names: str) -> str:
    """The error's text matches `message`, names every one of `names` and fits on one line."""
    text = str(error)
    assert re.search(message, text), text
    assert all(name in text for name in names), (names, text)
    assert "\n" not in text and "Traceback" not in text, text
    return text


def npy(array) -> bytes:
    """The bytes np.save writes for `array`."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def npz(array) -> bytes:
    """The bytes of an .npz archive holding `array` (what a .npy name sometimes hides)."""
    buffer = io.BytesIO()
    np.savez(buffer, data=array)
    return buffer.getvalue()


# ---------------------------------------------------------------- BVH (motiondiff.data.formats.bvh.load_bvh)
# Each case mutates the valid three-joint file of test_bvh.tiny (25 lines: HIERARCHY on line 1, the arm's
# CHANNELS on line 9, the hand's JOINT on line 10, MOTION on 21, Frames on 22, Frame Time on 23, frames on 24-25).

ARM_CHANNELS = "CHANNELS 3 Xrotation Yrotation Zrotation"  # first on line 9 (the root's has 6)


def nested(depth: int) -> str:
    """A valid-looking chain of `depth` joints, each inside the last."""
    opening = "".join(f"JOINT j{i}\n{{\nOFFSET 0 1 0\nCHANNELS 0\n" for i in range(depth))
    closing = "}\n" * (depth + 1)
    return (
        "HIERARCHY\nROOT r\n{\nOFFSET 0 0 0\nCHANNELS 0\n" + opening + closing + "MOTION\nFrames: 1\nFrame Time: 0.1\n"
    )


BVH_CASES = [
    pytest.param(
        lambda t: bytes(range(256)) * 4,
        r"not a BVH file \(it does not start with HIERARCHY\)",
        id="binary garbage (an FBX renamed)",
    ),
    pytest.param(
        lambda t: t[: t.index("JOINT ns:hand")],
        r"\(line 9\): the HIERARCHY block ends early \(missing '\}' or MOTION\)",
        id="cut inside the HIERARCHY",
    ),
    pytest.param(
        lambda t: t[: t.index("Frame Time")],
        r"\(line 22\): the MOTION block has no 'Frames:' and 'Frame Time:' lines",
        id="cut after 'Frames:'",
    ),
    pytest.param(
        lambda t: t.replace("Frames: 2", "Frames: two"),
        r"\(line 22\): expected 'Frames: <count>' but found 'Frames: two'",
        id="'Frames: two'",
    ),
    pytest.param(
        lambda t: t.replace("Frame Time: 0.5", "Frame Time: 0"),
        r"\(line 23\): expected 'Frame Time: <seconds>' \(> 0\) but found 'Frame Time: 0'",
        id="'Frame Time: 0'",
    ),
    pytest.param(
        lambda t: t[: t.index("1 2 3 90")].replace("Frames: 2", "Frames: 0"),
        r"\(line 22\): the MOTION block has no frames",
        id="'Frames: 0' and no frames",
    ),
    pytest.param(
        lambda t: t.replace("1 2 3 90", "1 2 nan 90"),
        r"\(line 24\): frame 0 has a value that is not finite \(nan or inf\)",
        id="nan among the frame values",
    ),
    pytest.param(
        lambda t: t.replace("OFFSET 1 0 0", "OFFSET 1 inf 0"),
        r"\(line 8\): expected a finite number but found 'inf'",
        id="inf in an OFFSET",
    ),
    pytest.param(
        lambda t: t.replace(ARM_CHANNELS, "CHANNELS 3 Xrotation Yrotation", 1),
        r"\(line 10\): 'CHANNELS 3' is followed by fewer than 3 channel names",
        id="CHANNELS 3 with two names",
    ),
    pytest.param(
        lambda t: t.replace("CHANNELS 3", "CHANNELS -3", 1),
        r"\(line 9\): 'CHANNELS -3' has a negative channel count",
        id="CHANNELS -3",
    ),
    pytest.param(
        lambda t: t.replace(ARM_CHANNELS, "CHANNELS 3 Xrotation Xrotation Zrotation", 1),
        r"\(line 9\): joint 'arm' has rotation channels X X Z: use at most three, no axis twice in a row",
        id="rotation axis twice in a row",
    ),
    pytest.param(
        lambda t: t.replace(ARM_CHANNELS, "CHANNELS 4 Xrotation Yrotation Zrotation Xrotation", 1),
        r"\(line 9\): joint 'arm' has rotation channels X Y Z X: use at most three",
        id="four rotation channels",
    ),
    pytest.param(
        lambda t: t.replace("JOINT ns:hand", "JIONT ns:hand"),
        r"\(line 10\): expected JOINT, End Site or '\}' but found 'JIONT'",
        id="misspelt JOINT",
    ),
    pytest.param(
        lambda t: t.replace("ns:hand", "other:arm"),
        r"joint names repeat after stripping namespaces: arm",
        id="two joints named alike after the namespace",
    ),
    pytest.param(
        lambda t: nested(300), r"\(line \d+\): the joints nest more than 256 levels deep", id="joints nested 300 deep"
    ),
    pytest.param(
        lambda t: re.sub(r"CHANNELS \d( \w+)*", "CHANNELS 0", t),
        r"no joint has CHANNELS, so the file holds no motion",
        id="no CHANNELS at all",
    ),
]


@pytest.mark.parametrize("mutate, message", BVH_CASES)
def test_broken_bvh_names_the_file_the_line_and_the_fix(tmp_path, mutate, message):
    broken = mutate(tiny(tmp_path).read_text())
    path = tmp_path / "broken.bvh"
    path.write_bytes(broken if isinstance(broken, bytes) else broken.encode())
    with pytest.raises(UserError) as error:
        load_bvh(path)
    text = assert_one_clear_line(error.value, message, f"BVH file '{path}'")
    assert text.endswith("; fix or re-export the file.")


# ---------------------------------------------------------------- dance keypoints (dataset.source=x.npy or x.bvh)

MOVING = np.cumsum(np.random.default_rng(0).normal(size=(300, 20, 2)), axis=0).astype(np.float32)  # a valid source


def one_joint_bvh(frames: int = 200) -> str:
    """A BVH whose skeleton is a root alone (with an End Site), moving about."""
    rows = "".join(f"{np.sin(i / 10):.4f} {np.cos(i / 7):.4f} 0\n" for i in range(frames))
    return (
        "HIERARCHY\nROOT a\n{\nOFFSET 0 0 0\nCHANNELS 3 Xposition Yposition Zposition\n"
        "End Site\n{\nOFFSET 0 1 0\n}\n}\n"
        f"MOTION\nFrames: {frames}\nFrame Time: 0.0333333\n{rows}"
    )


DANCE_CASES = [
    pytest.param(
        "clip.npy",
        npy(MOVING[:10].astype(str)),
        {},
        r"holds an array of shape \(10, 20, 2\) and dtype <U\d+; expected numbers of shape \(frames, joints, 2\)",
        id="strings",
    ),
    pytest.param(
        "clip.npy",
        npy(MOVING.astype(np.complex64)),
        {},
        r"dtype complex64; expected numbers of shape \(frames, joints, 2\)",
        id="complex numbers",
    ),
    pytest.param(
        "clip.npy",
        npy(np.where(np.arange(300)[:, None, None] == 7, np.inf, MOVING)),
        {},
        r"contains NaN or infinite values; clean or interpolate them first",
        id="an inf",
    ),
    pytest.param(
        "clip.npy",
        b"",
        {},
        r"is not a plain numeric \.npy array \(No data left in file\); save it with np\.save",
        id="empty file",
    ),
    pytest.param(
        "clip.npy",
        npy(MOVING)[:5000],
        {},
        r"is not a plain numeric \.npy array \(Failed to read all data for array\); save it with np\.save",
        id="truncated .npy",
    ),
    pytest.param(
        "clip.npy",
        npz(MOVING),
        {},
        r"is an \.npz archive, not a \.npy array; save the keypoints alone with np\.save",
        id=".npz under a .npy name",
    ),
    pytest.param(
        "clip.npy",
        npy(np.zeros((300, 20, 2), np.float32)),
        {},
        r"every keypoint of '.*' sits at the same place in all 255 training frames, so they cannot be normalised; "
        r"check that the file holds the motion",
        id="keypoints that never move",
    ),
    pytest.param(
        "clip.npy",
        npy(MOVING[:, :1]),
        {"parents": [-1]},
        r"has only 1 joint\(s\); a dance needs a skeleton of at least two joints \(one bone\)",
        id="one joint (.npy)",
    ),
    pytest.param(
        "clip.bvh",
        one_joint_bvh().encode(),
        {"joint_map": "none"},
        r"has only 1 joint\(s\); a dance needs a skeleton of at least two joints \(one bone\)",
        id="one joint (.bvh)",
    ),
    pytest.param(
        "clip.npy",
        npy(MOVING[:, :3]),
        {"parents": [-1, 0, 2]},
        r"dataset\.parents has 3 entries for 3 joints in '.*'; give one parent index per joint, "
        r"each smaller than its own index",
        id="parents naming a later joint",
    ),
]


@pytest.mark.parametrize("name, content, kwargs, message", DANCE_CASES)
def test_broken_dance_source_names_the_file_and_the_fix(tmp_path, name, content, kwargs, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UserError) as error:
        DanceDataModule(source=str(path), window=16, **kwargs).setup()
    assert_one_clear_line(error.value, message, str(path))


# ---------------------------------------------------------------- HumanML3D: new_joint_vecs, texts, splits, statistics


@pytest.fixture
def small_hml(tmp_path):
    """Two training motions (000001, 000002), one val and one test motion, in the HumanML3D layout."""
    captions = {
        "000001": "a person walks",
        "000002": "a person jumps",
        "000010": "a person sits",
        "000020": "a person bows",
    }
    motions = {motion_id: (motion(60, seed=int(motion_id)), [line(text)]) for motion_id, text in captions.items()}
    return write_humanml3d(
        tmp_path / "hml", motions, {"train": ["000001", "000002"], "val": ["000010"], "test": ["000020"]}
    )


def setup_module_on(root, tmp_path):
    module = TextMotionDataModule(str(root), FakeEncoder(), cache_dir=str(tmp_path / "cache"), batch_size=1)
    module.setup("fit")
    return module


def write(relative: str, data: bytes):
    """A mutation of the dataset: the file at `relative` gets `data`."""
    return lambda root: (root / relative).write_bytes(data)


def empty_folder(root):
    shutil.rmtree(root)
    root.mkdir()


FEATURES = "new_joint_vecs/000002.npy"
HML_ERRORS = [
    pytest.param(
        write(FEATURES, npy(np.zeros((60, 22, 3), np.float32))),
        FEATURES,
        r"holds an array of shape \(60, 22, 3\) and dtype float32; the humanml3d layout expects \(frames, 263\) "
        r"humanml3d features: is dataset\.layout right\?",
        id="joints saved as features",
    ),
    pytest.param(
        write(FEATURES, npy(motion(60).astype(str))),
        FEATURES,
        r"holds an array of shape \(60, 263\) and dtype <U\d+; the humanml3d layout expects",
        id="features as strings",
    ),
    pytest.param(
        write(FEATURES, npy(motion(60).astype(np.complex64))),
        FEATURES,
        r"and dtype complex64; the humanml3d layout expects",
        id="complex features",
    ),
    pytest.param(
        write("train.txt", b"\xff\xfe\x00\x01"),
        "train.txt",
        r"split file '.*' is not UTF-8 text; it must list one motion id per line",
        id="binary split file",
    ),
    pytest.param(
        write("train.txt", b""),
        "train.txt",
        r"no motion of the 0 ids in '.*' could be loaded from '.*' \(the split lists no ids\); "
        r"check that the split file belongs to this dataset",
        id="empty split file",
    ),
    pytest.param(
        empty_folder,
        "new_joint_vecs",
        r"'.*new_joint_vecs' not found: '.*' is not a humanml3d dataset \(run the HumanML3D preparation",
        id="dataset folder with no files",
    ),
    pytest.param(
        write("Mean.npy", npy(np.zeros(251, np.float32))),
        "Mean.npy",
        r"must hold 263 finite numbers, got shape \(251,\) and dtype float32; regenerate it",
        id="Mean.npy of 251 numbers",
    ),
    pytest.param(
        write("Mean.npy", b"mean values"),
        "Mean.npy",
        r"cannot be read as a \.npy array \(This file contains pickled \(object\) data\); regenerate it",
        id="Mean.npy that is not .npy",
    ),
    pytest.param(
        write("Mean.npy", b""),
        "Mean.npy",
        r"cannot be read as a \.npy array \(No data left in file\); regenerate it",
        id="empty Mean.npy",
    ),
    pytest.param(
        write("Std.npy", npy(np.full(263, np.nan, np.float32))),
        "Std.npy",
        r"must hold 263 finite numbers, got NaN or infinity; regenerate it",
        id="Std.npy with NaN",
    ),
]


@pytest.mark.parametrize("mutate, name, message", HML_ERRORS)
def test_broken_humanml3d_dataset_names_the_file_and_the_fix(small_hml, tmp_path, mutate, name, message):
    mutate(small_hml)
    with pytest.raises(UserError) as error:
        setup_module_on(small_hml, tmp_path)
    assert_one_clear_line(error.value, message, str(small_hml / name))


CAPTIONS = "texts/000002.txt"
HML_SKIPS = [
    pytest.param(
        write(FEATURES, npy(np.where(np.arange(263) == 3, np.inf, motion(60)))),
        r"1 motions contain NaN or infinite values and were skipped \(first: .*new_joint_vecs/000002\.npy\)",
        id="an inf in the features",
    ),
    pytest.param(
        write(FEATURES, b"garbage"),
        r"1 feature files could not be read as \.npy arrays and were skipped \(first: .*new_joint_vecs/000002\.npy\)",
        id="feature file that is not .npy",
    ),
    pytest.param(
        write(FEATURES, npz(motion(60))),
        r"1 feature files could not be read as \.npy arrays and were skipped \(first: .*new_joint_vecs/000002\.npy\)",
        id=".npz under a .npy name",
    ),
    pytest.param(
        write(CAPTIONS, b""),
        r"1 motions have no usable caption and were skipped \(first: 000002\)",
        id="empty caption file",
    ),
    pytest.param(
        lambda root: (root / CAPTIONS).unlink(),
        r"1 motions have no usable caption and were skipped \(first: 000002\)",
        id="no caption file",
    ),
    pytest.param(
        write(CAPTIONS, b"a person jumps#a/DET person/NOUN jump/VERB#inf#inf\n"),
        r"1 caption lines have unreadable start/end times and were ignored \(first: .*texts/000002\.txt:1\)",
        id="caption times inf",
    ),
    pytest.param(
        write(CAPTIONS, b"a person jumps#a/DET#soon#later\n"),
        r"1 caption lines have unreadable start/end times and were ignored \(first: .*texts/000002\.txt:1\)",
        id="caption times not numbers",
    ),
    pytest.param(
        write(CAPTIONS, (line("a person jumps", 10.0, 12.0) + "\n").encode()),
        r"1 motions or sub-clips are shorter than min_frames=40 frames and were skipped \(first: 000002#10#12\)",
        id="sub-clip past the motion's end",
    ),
]


@pytest.mark.parametrize("mutate, warning", HML_SKIPS)
def test_unusable_humanml3d_items_are_skipped_with_one_counted_warning(small_hml, tmp_path, caplog, mutate, warning):
    mutate(small_hml)
    with caplog.at_level(logging.WARNING):
        module = setup_module_on(small_hml, tmp_path)
    assert [clip.name for clip in module.train_set.clips] == ["000001"]  # the rest still loads
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    matching = [m for m in messages if re.search(warning, m)]
    assert len(matching) == 1 and matching[0].startswith(str(small_hml / "train.txt") + ": "), messages


# ---------------------------------------------------------------- precomputed text features (text_encoder=precomputed)

POOLED = np.arange(10, dtype=np.float32).reshape(2, 5)  # a valid file: two caption lines, dim 5

PRECOMPUTED_CASES = [
    pytest.param(
        {},
        "text_encoder.directory",
        r"text_encoder\.directory='.*' holds no \.npy files \(expected <motion_id>\.npy per motion\)",
        id="directory with no .npy",
    ),
    pytest.param(
        {"m1.npy": b"features"},
        "m1.npy",
        r"cannot be read as a \.npy array \(This file contains pickled \(object\) data\); re-extract them",
        id="first file not .npy",
    ),
    pytest.param(
        {"m1.npy": b""},
        "m1.npy",
        r"cannot be read as a \.npy array \(No data left in file\); re-extract them",
        id="first file empty",
    ),
    pytest.param(
        {"m1.npy": npz(POOLED)},
        "m1.npy",
        r"are an \.npz archive; save one array per motion with np\.save",
        id=".npz under a .npy name",
    ),
    pytest.param(
        {"m0.npy": npy(POOLED), "m1.npy": npy(np.full((2, 5), "a"))},
        "m1.npy",
        r"have dtype <U1; re-extract them as float32 numbers",
        id="features as strings",
    ),
    pytest.param(
        {"m0.npy": npy(POOLED), "m1.npy": npy(POOLED * np.nan)},
        "m1.npy",
        r"contain NaN or infinite values; re-extract them",
        id="NaN in the features",
    ),
    pytest.param(
        {"m1.npy": npy(np.zeros((2, 3, 5), np.float32))},
        "m1.npy",
        r"row 0 is all zeros \(no token\); re-extract it",
        id="token row all zeros",
    ),
]


@pytest.mark.parametrize("files, key, message", PRECOMPUTED_CASES)
def test_broken_precomputed_features_name_the_file_and_the_fix(tmp_path, files, key, message):
    directory = tmp_path / "features"
    directory.mkdir()
    for name, content in files.items():
        (directory / name).write_bytes(content)
    with pytest.raises(UserError) as error:
        PrecomputedEncoder(str(directory)).encode_items([CaptionItem("m1", 0, "a person walks")])
    assert_one_clear_line(error.value, message, key)


def test_precomputed_directory_that_is_a_file(tmp_path):
    path = tmp_path / "features.npy"
    np.save(path, POOLED)
    with pytest.raises(UserError) as error:
        PrecomputedEncoder(str(path))
    message = r"text_encoder\.directory='.*' is not a directory of <motion_id>\.npy caption features"
    assert_one_clear_line(error.value, message, str(path))

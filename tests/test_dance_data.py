"""The single-dance dataset: windows, normalisation, sources and the errors users see."""

import numpy as np
import pytest
import torch

from motiondiff.core.errors import UserError
from motiondiff.data.dance_windows import DanceDataModule, window_starts
from motiondiff.data.kinematics.skeleton import BODY20_PARENTS
from motiondiff.data.normalizers import KeypointNormalizer


@pytest.mark.parametrize(
    "frames, window, stride, expected",
    [(900, 48, 1, 853), (900, 48, 48, 18), (900, 48, 24, 36), (100, 48, 10, 6), (48, 48, 5, 1), (47, 48, 1, 0)],
)
def test_window_counts(frames, window, stride, expected):
    starts = window_starts(frames, window, stride)
    assert len(starts) == expected
    assert all(start + window <= frames for start in starts)
    assert len(starts) == max(0, (frames - window) // stride + 1)


def test_normalisation_round_trip_and_statistics():
    rng = np.random.default_rng(0)
    keypoints = (rng.normal(size=(200, 20, 2)) * 30 + [500, 300]).astype(np.float32)
    normalizer = KeypointNormalizer().fit(keypoints, root_joint=0)
    features = normalizer.normalize(torch.from_numpy(keypoints))
    assert features.shape == (200, 40)
    assert abs(features.std().item() - 1.0) < 0.05
    restored = normalizer.denormalize(features).numpy()
    np.testing.assert_allclose(restored, keypoints, rtol=0, atol=1e-3)


def _write_npy(tmp_path, array, name="clip.npy"):
    path = tmp_path / name
    np.save(path, array)
    return str(path)


def test_npy_source_windows_and_validation_span(tmp_path):
    keypoints = np.cumsum(np.random.default_rng(1).normal(size=(300, 20, 2)), axis=0).astype(np.float32)
    data = DanceDataModule(source=_write_npy(tmp_path, keypoints), window=32, stride=4, val_fraction=0.2, batch_size=8)
    data.setup()
    assert data.train_frames == 240
    assert len(data.train_set) == len(window_starts(240, 32, 4))
    assert len(data.val_set) == len(window_starts(60, 32, 4))
    item = data.train_set[0]
    assert item["motion"].shape == (32, 40) and item["mask"].all()
    # The last validation window ends on the last frame of the held-out span, never in the training span.
    last_val = data.normalizer.denormalize(data.val_set[len(data.val_set) - 1]["motion"]).numpy()
    np.testing.assert_allclose(last_val[-1], keypoints[240 + data.val_set.starts[-1] + 31], atol=1e-3)
    info = data.info
    assert info.features == 40 and info.window == 32 and info.parents == BODY20_PARENTS
    batch = next(iter(data.train_dataloader()))
    assert batch["motion"].shape == (8, 32, 40)


def test_npy_with_custom_skeleton(tmp_path):
    keypoints = np.random.default_rng(2).normal(size=(120, 3, 2)).astype(np.float32)
    data = DanceDataModule(source=_write_npy(tmp_path, keypoints), window=16, parents=[-1, 0, 1])
    data.setup()
    assert data.info.features == 6 and data.info.parents == (-1, 0, 1)


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((300, 20, 3), np.float32), r"shape \(300, 20, 3\).*expected numbers of shape \(frames, joints, 2\)"),
        (np.zeros((300, 40), np.float32), r"shape \(300, 40\)"),
        (np.full((300, 20, 2), np.nan, np.float32), "NaN"),
        (np.zeros((300, 7, 2), np.float32), "dataset.parents"),
        (np.zeros((40, 20, 2), np.float32), "40 frames, too short.*lower dataset.window"),
    ],
)
def test_bad_npy_inputs_name_the_file_and_the_fix(tmp_path, array, message):
    path = _write_npy(tmp_path, array)
    with pytest.raises(UserError, match=message):
        DanceDataModule(source=path).setup()


def test_missing_file_and_unknown_source(tmp_path):
    with pytest.raises(UserError, match="not found.*nothing.npy"):
        DanceDataModule(source=str(tmp_path / "nothing.npy")).setup()
    with pytest.raises(UserError, match="not 'procedural', a .npy file or a .bvh file"):
        DanceDataModule(source=str(tmp_path / "clip.csv")).setup()


def test_pickled_npy_is_refused(tmp_path):
    path = tmp_path / "objects.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UserError, match="not a plain numeric"):
        DanceDataModule(source=str(path)).setup()


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"window": 0}, "dataset.window"),
        ({"stride": -1}, "dataset.stride"),
        ({"val_fraction": 1.5}, "dataset.val_fraction"),
        ({"batch_size": 0}, "dataset.batch_size"),
        ({"fps": 0}, "dataset.fps"),
    ],
)
def test_bad_settings_name_the_key(kwargs, key):
    with pytest.raises(UserError, match=key):
        DanceDataModule(**kwargs)


def test_procedural_default_source():
    data = DanceDataModule(source="procedural", window=48, stride=2)
    data.setup()
    assert data.sequence.keypoints.shape == (900, 20, 2)
    assert data.info.fps == 30 and data.info.features == 40
    assert len(data.train_set) == len(window_starts(765, 48, 2))

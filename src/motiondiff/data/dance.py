"""The single-dance dataset: one 2D keypoint sequence cut into fixed-length windows.

Sources: `procedural` (the embedded synthetic dance), a `.npy` of shape (frames, joints, 2),
or a `.bvh` motion-capture file (forward kinematics, resampling, joint selection and an
orthographic projection). The last `val_fraction` of the frames is held out for
validation; windows never straddle the split. Keypoints are centred on the mean
position of a root joint and divided by one scale; those statistics travel with the
checkpoint (`KeypointNormalizer` is part of the LightningModule's state).
"""

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from motiondiff.data.skeleton import BODY20_NAMES, BODY20_PARENTS, bone_lengths
from motiondiff.errors import UserError, first_sentence, require_file


@dataclass
class DanceSequence:
    """A keypoint sequence with its skeleton and frame rate."""

    keypoints: np.ndarray  # (frames, joints, dims) float32
    names: tuple
    parents: tuple
    fps: float


def load_dance_sequence(
    source: str, fps: float, joint_map: str, camera: dict, procedural: dict, parents=None
) -> DanceSequence:
    """Load the sequence named by `source`: 'procedural', a .npy path or a .bvh path."""
    if source == "procedural":
        from motiondiff.data.procedural_dance import make_procedural_dance

        _, keypoints = make_procedural_dance(fps=fps, **procedural)
        return DanceSequence(keypoints.astype(np.float32), BODY20_NAMES, BODY20_PARENTS, fps)
    suffix = Path(source).suffix.lower()
    if suffix == ".npy":
        return _load_npy(source, fps, parents)
    if suffix == ".bvh":
        from motiondiff.data.bvh import load_bvh_keypoints

        keypoints, names, bvh_parents, out_fps = load_bvh_keypoints(source, fps=fps, joint_map=joint_map, **camera)
        return DanceSequence(keypoints.astype(np.float32), tuple(names), tuple(bvh_parents), out_fps)
    raise UserError(f"dataset.source='{source}' is not 'procedural', a .npy file or a .bvh file.")


def _load_npy(path: str, fps: float, parents) -> DanceSequence:
    """Keypoints (frames, joints, 2) from a .npy file (no pickle); skeleton from `parents` or BODY20."""
    require_file(path, "keypoint file (dataset.source)")
    try:
        keypoints = np.load(path, allow_pickle=False)
    except (ValueError, EOFError) as error:  # EOFError: an empty file
        reason = first_sentence(error)
        raise UserError(f"'{path}' is not a plain numeric .npy array ({reason}); save it with np.save.") from None
    if not isinstance(keypoints, np.ndarray):  # an .npz archive under a .npy name
        keypoints.close()
        raise UserError(f"'{path}' is an .npz archive, not a .npy array; save the keypoints alone with np.save.")
    if keypoints.ndim != 3 or keypoints.shape[-1] != 2 or keypoints.dtype.kind not in "iuf":
        raise UserError(
            f"'{path}' holds an array of shape {keypoints.shape} and dtype {keypoints.dtype}; "
            "expected numbers of shape (frames, joints, 2)."
        )
    if not np.isfinite(keypoints).all():
        raise UserError(f"'{path}' contains NaN or infinite values; clean or interpolate them first.")
    joints = keypoints.shape[1]
    if parents is None:
        if joints != len(BODY20_PARENTS):
            raise UserError(
                f"'{path}' has {joints} joints; give the skeleton as dataset.parents=[-1,0,...] "
                f"({joints} parent indices) or use the {len(BODY20_PARENTS)}-joint body layout."
            )
        names, parents = BODY20_NAMES, BODY20_PARENTS
    else:
        parents = tuple(int(p) for p in parents)
        if len(parents) != joints or any(not -1 <= p < j for j, p in enumerate(parents)):
            raise UserError(
                f"dataset.parents has {len(parents)} entries for {joints} joints in '{path}'; give one parent "
                "index per joint, each smaller than its own index (-1 for the root)."
            )
        names = tuple(f"joint{j}" for j in range(joints))
    return DanceSequence(keypoints.astype(np.float32), names, parents, fps)


class KeypointNormalizer(nn.Module):
    """Centre keypoints on a fixed position, divide by one scale, flatten joints into features."""

    def __init__(self, dims: int = 2):
        super().__init__()
        self.register_buffer("center", torch.zeros(dims))
        self.register_buffer("scale", torch.ones(()))

    def fit(self, keypoints: np.ndarray, root_joint: int) -> "KeypointNormalizer":
        """Centre = mean root position over the frames given; scale = std of the centred coordinates."""
        center = keypoints[:, root_joint].mean(axis=0)  # (dims,)
        scale = (keypoints - center).std()
        assert scale > 0, "a sequence whose keypoints never move cannot be normalised"
        self.center.copy_(torch.from_numpy(center.astype(np.float32)))
        self.scale.fill_(float(scale))
        return self

    def normalize(self, keypoints: torch.Tensor) -> torch.Tensor:
        """(..., joints, dims) -> (..., joints * dims)."""
        return ((keypoints - self.center) / self.scale).flatten(-2)

    def denormalize(self, features: torch.Tensor) -> torch.Tensor:
        """(..., joints * dims) -> (..., joints, dims) in the original coordinates."""
        dims = self.center.shape[0]
        return features.unflatten(-1, (-1, dims)) * self.scale + self.center


def window_starts(num_frames: int, window: int, stride: int) -> list:
    """First frame of every full window of `window` frames taken every `stride` frames."""
    assert window >= 1 and stride >= 1
    return list(range(0, num_frames - window + 1, stride))


class WindowDataset(Dataset):
    """Fixed-length windows of a feature sequence (frames, feats), all frames valid."""

    def __init__(self, features: torch.Tensor, starts: list, window: int):
        self.features, self.starts, self.window = features, starts, window

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> dict:
        start = self.starts[index]
        motion = self.features[start : start + self.window]  # (N, F)
        return {"motion": motion, "mask": torch.ones(self.window, dtype=torch.bool)}


class DanceDataModule(L.LightningDataModule):
    """Train/validation windows of one dance, with the statistics to undo the normalisation."""

    def __init__(
        self,
        source: str = "procedural",
        window: int = 48,
        stride: int = 1,
        val_fraction: float = 0.15,
        batch_size: int = 64,
        num_workers: int = 0,
        fps: float = 30.0,
        root_joint: int = 0,
        joint_map: str = "auto",
        parents: Optional[list] = None,
        camera: Optional[dict] = None,
        procedural: Optional[dict] = None,
    ):
        super().__init__()
        _check_positive_int("dataset.window", window)
        _check_positive_int("dataset.stride", stride)
        _check_positive_int("dataset.batch_size", batch_size)
        if not 0 < val_fraction < 1:
            raise UserError(f"dataset.val_fraction={val_fraction} must lie strictly between 0 and 1.")
        if fps <= 0:
            raise UserError(f"dataset.fps={fps} must be positive.")
        self.source, self.window, self.stride, self.val_fraction = str(source), window, stride, val_fraction
        self.batch_size, self.num_workers, self.fps, self.root_joint = batch_size, num_workers, fps, root_joint
        self.joint_map, self.parents = joint_map, parents
        self.camera, self.procedural = dict(camera or {}), dict(procedural or {})
        self.normalizer = KeypointNormalizer()
        self.sequence: Optional[DanceSequence] = None

    def setup(self, stage: Optional[str] = None) -> None:
        """Load the sequence once, fit the normalisation on the training span, cut windows."""
        if self.sequence is not None:
            return
        sequence = load_dance_sequence(
            self.source, self.fps, self.joint_map, self.camera, self.procedural, self.parents
        )
        frames, joints = sequence.keypoints.shape[:2]
        if joints < 2:
            raise UserError(
                f"the sequence from '{self.source}' has only {joints} joint(s); a dance needs a skeleton of at least "
                "two joints (one bone): use a file with the whole body."
            )
        if not 0 <= self.root_joint < joints:
            raise UserError(f"dataset.root_joint={self.root_joint} is not a joint index of the {joints} joints.")
        train_frames = check_window_fits(frames, self.window, self.val_fraction, self.source)
        if np.ptp(sequence.keypoints[:train_frames], axis=(0, 1)).max() == 0:
            raise UserError(
                f"every keypoint of '{self.source}' sits at the same place in all {train_frames} training frames, "
                "so they cannot be normalised; check that the file holds the motion (not zeros)."
            )
        self.sequence, self.train_frames = sequence, train_frames
        self.normalizer.fit(sequence.keypoints[:train_frames], self.root_joint)
        features = self.normalizer.normalize(torch.from_numpy(sequence.keypoints))  # (T, J*2)
        self.train_set = WindowDataset(features[:train_frames], window_starts(train_frames, self.window, self.stride), self.window)
        val_starts = window_starts(frames - train_frames, self.window, self.stride)
        self.val_set = WindowDataset(features[train_frames:], val_starts, self.window)
        if len(self.train_set) < self.batch_size:
            warnings.warn(
                f"only {len(self.train_set)} training windows for dataset.batch_size={self.batch_size}; "
                "batches will be smaller than asked.",
                stacklevel=2,
            )

    @property
    def info(self) -> dict:
        """What the model and the renderer need to know about the data (plain types only)."""
        assert self.sequence is not None, "call setup() first"
        keypoints = self.sequence.keypoints[: self.train_frames]
        return {
            "kind": "keypoints",
            "features": int(keypoints.shape[1] * keypoints.shape[2]),
            "num_joints": int(keypoints.shape[1]),
            "dims": int(keypoints.shape[2]),
            "window": int(self.window),
            "fps": float(self.sequence.fps),
            "joint_names": list(self.sequence.names),
            "parents": [int(p) for p in self.sequence.parents],
            "bone_lengths": bone_lengths(keypoints, self.sequence.parents).mean(axis=0).tolist(),
            "feature_abs_max": float(self.train_set.features.abs().max()),
            "source": self.source,
        }

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.train_set, batch_size=self.batch_size, shuffle=True, num_workers=self.num_workers, drop_last=False,
            pin_memory=torch.cuda.is_available(),  # faster host-to-GPU copies; nothing to gain on CPU
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(
            self.val_set, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available(),
        )


def check_window_fits(frames: int, window: int, val_fraction: float, source: str) -> int:
    """The training span's frames; UserError unless a window fits in both the training and the validation span."""
    train_frames = frames - int(round(frames * val_fraction))
    if min(train_frames, frames - train_frames) < window:
        needed = int(np.ceil(window / min(val_fraction, 1 - val_fraction)))
        raise UserError(
            f"the sequence from '{source}' has {frames} frames, too short for windows of {window} frames in both "
            f"the training and the validation span (val_fraction={val_fraction}); it needs at least {needed} frames: "
            "lower dataset.window or use a longer clip."
        )
    return train_frames


def _check_positive_int(key: str, value) -> None:
    if int(value) != value or value < 1:
        raise UserError(f"{key}={value} must be a positive integer.")

"""The single-dance dataset: one 2D keypoint sequence cut into fixed-length windows.

Sources: `procedural` (the embedded synthetic dance), a `.npy` of shape (frames, joints, 2),
or a `.bvh` motion-capture file (forward kinematics, resampling, joint selection and an
orthographic projection). The last `val_fraction` of the frames is held out for
validation; windows never straddle the split. Keypoints are centred on the mean
position of a root joint and divided by one scale; those statistics travel with the
checkpoint (`KeypointNormalizer` is part of the LightningModule's state).
"""

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from motiondiff.core.checks import whole_number
from motiondiff.core.errors import UserError
from motiondiff.data.formats.bvh import load_bvh_keypoints
from motiondiff.data.formats.keypoints_npy import load_keypoints_npy
from motiondiff.data.info import KeypointData
from motiondiff.data.kinematics.skeleton import BODY20_NAMES, BODY20_PARENTS, bone_lengths
from motiondiff.data.normalizers import KeypointNormalizer
from motiondiff.data.procedural.dance import make_procedural_dance
from motiondiff.data.spans import check_window_fits


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
        _, keypoints = make_procedural_dance(fps=fps, **procedural)
        return DanceSequence(keypoints.astype(np.float32), BODY20_NAMES, BODY20_PARENTS, fps)
    suffix = Path(source).suffix.lower()
    if suffix == ".npy":
        return DanceSequence(*load_keypoints_npy(source, parents), fps)
    if suffix == ".bvh":
        keypoints, names, bvh_parents, out_fps = load_bvh_keypoints(source, fps=fps, joint_map=joint_map, **camera)
        return DanceSequence(keypoints.astype(np.float32), tuple(names), tuple(bvh_parents), out_fps)
    raise UserError(f"dataset.source='{source}' is not 'procedural', a .npy file or a .bvh file.")


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


class WindowLoaders:
    """The loaders of a single dance's train_set and val_set (shuffled training windows, validation in order)."""

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            shuffle=True,
            num_workers=self.num_workers,
            drop_last=False,
            pin_memory=torch.cuda.is_available(),  # faster host-to-GPU copies; nothing to gain on CPU
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(
            self.val_set,
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available(),
        )


class DanceDataModule(WindowLoaders, L.LightningDataModule):
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
        camera: Optional[Mapping] = None,
        procedural: Optional[Mapping] = None,
    ):
        super().__init__()
        window, stride, batch_size = window_options(window, stride, batch_size, val_fraction)
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
        self.train_set = WindowDataset(
            features[:train_frames], window_starts(train_frames, self.window, self.stride), self.window
        )
        val_starts = window_starts(frames - train_frames, self.window, self.stride)
        self.val_set = WindowDataset(features[train_frames:], val_starts, self.window)
        if len(self.train_set) < self.batch_size:
            warnings.warn(
                f"only {len(self.train_set)} training windows for dataset.batch_size={self.batch_size}; "
                "batches will be smaller than asked.",
                stacklevel=2,
            )

    @property
    def info(self) -> KeypointData:
        """What the model and the renderer need to know about the data."""
        assert self.sequence is not None, "call setup() first"
        keypoints = self.sequence.keypoints[: self.train_frames]
        return KeypointData(
            features=int(keypoints.shape[1] * keypoints.shape[2]),
            num_joints=int(keypoints.shape[1]),
            dims=int(keypoints.shape[2]),
            fps=float(self.sequence.fps),
            joint_names=self.sequence.names,
            parents=self.sequence.parents,
            feature_abs_max=float(self.train_set.features.abs().max()),
            source=self.source,
            window=int(self.window),
            bone_lengths=bone_lengths(keypoints, self.sequence.parents).mean(axis=0).tolist(),
        )

    def measure_space(self, features: np.ndarray) -> tuple:
        """Normalised features (T, F) -> (descriptors (T, F): the keypoints relative to the root joint's, positions
        (T, J, dims): the features un-flattened), both float64: what the single-dance measures compare and measure.

        Descriptors leave out where on the stage the dancer is, as the 3D dance's do (joints relative to the root):
        coverage and the copy check compare the moves, not the path across the floor."""
        positions = np.asarray(features, dtype=np.float64).reshape(len(features), -1, self.sequence.keypoints.shape[-1])
        descriptors = positions - positions[:, self.root_joint : self.root_joint + 1]  # (T, J, dims)
        return descriptors.reshape(len(features), -1), positions

    def contact_setup(self) -> tuple:
        """(up axis index of the positions, contact joints): (None, None), no foot contacts in a 2D view."""
        return None, None


def window_options(window, stride, batch_size, val_fraction) -> tuple:
    """(window, stride, batch_size) as whole numbers; UserError naming the option that is not, or a val_fraction
    outside (0, 1)."""
    if not 0 < val_fraction < 1:
        raise UserError(f"dataset.val_fraction={val_fraction} must lie strictly between 0 and 1.")
    names = ("dataset.window", "dataset.stride", "dataset.batch_size")
    return tuple(whole_number(name, value) for name, value in zip(names, (window, stride, batch_size)))

"""The typed description of a run's data: what the model, generation, rendering and evaluation need to know.

A DataModule describes its data with one of these dataclasses (`datamodule.info`); the LightningModule
saves it in the checkpoint's hyperparameters as plain data (`to_dict`, with its `kind`), and
`describe_data` reads it back, also from checkpoints written before these classes existed.
"""

from dataclasses import asdict, dataclass, fields
from typing import ClassVar

import torch
from torch import nn

from motiondiff.core.errors import UserError
from motiondiff.data.normalizers import FeatureNormalizer, KeypointNormalizer
from motiondiff.data.representations.registry import get_representation


@dataclass(frozen=True)
class MotionData:
    """What every kind of motion data has: its feature width, skeleton, frame rate and origin."""

    kind: ClassVar[str]
    conditional: ClassVar[bool]  # whether items carry a condition (a caption) that sampling needs
    units: ClassVar[str]  # what the coordinates of generated positions are
    features: int  # F: features per frame
    num_joints: int
    dims: int  # 2 for keypoints, 3 for joint positions
    fps: float
    joint_names: tuple
    parents: tuple  # parent index per joint, -1 for the root
    feature_abs_max: float  # largest |normalised feature| in the training data (bounds x0 clipping)
    source: str  # where the data came from (a path, or "procedural")

    def __post_init__(self):
        object.__setattr__(self, "joint_names", tuple(str(name) for name in self.joint_names))
        object.__setattr__(self, "parents", tuple(int(parent) for parent in self.parents))
        assert len(self.joint_names) == len(self.parents) == self.num_joints, (self.num_joints, self.joint_names)

    def to_dict(self) -> dict:
        """Plain data (lists, numbers, strings) with the kind, for checkpoint hyperparameters."""
        return {"kind": self.kind, **{key: list(v) if isinstance(v, tuple) else v for key, v in asdict(self).items()}}

    def skeleton_record(self) -> dict:
        """What generation.json records of the motions' skeleton and units (export and the report player read it)."""
        skeleton = {"joint_names": list(self.joint_names), "parents": list(self.parents), "fps": self.fps}
        return {"skeleton": skeleton, "units": self.units}


@dataclass(frozen=True)
class KeypointData(MotionData):
    """Windows of one keypoint sequence (the single dance): features are the flattened joints (J x dims)."""

    kind: ClassVar[str] = "keypoints"
    conditional: ClassVar[bool] = False
    units: ClassVar[str] = "2D keypoints, the training data's units, y up"
    window: int  # frames per window (N)
    bone_lengths: tuple  # mean length of each bone in the training span, Skeleton.bones() order

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "bone_lengths", tuple(float(length) for length in self.bone_lengths))
        assert self.features == self.num_joints * self.dims, (self.features, self.num_joints, self.dims)

    @property
    def sample_frames(self) -> int:
        """Frames of a generated sample."""
        return self.window

    def make_normalizer(self) -> nn.Module:
        """An empty normaliser for this data; its statistics load with the checkpoint's weights."""
        return KeypointNormalizer(dims=self.dims)

    def to_positions(self, raw: torch.Tensor) -> torch.Tensor:
        """Denormalised keypoints (..., N, J, dims) are already positions."""
        return raw


@dataclass(frozen=True)
class TextMotionData(MotionData):
    """Captioned motions in a feature representation (263 HumanML3D features, 205 smplrifke, ...)."""

    kind: ClassVar[str] = "text_motion"
    conditional: ClassVar[bool] = True
    units: ClassVar[str] = "metres, y up"
    representation: str  # a name in data.representations.registry
    layout: str  # the dataset layout it was read from (humanml3d, lab)
    max_frames: int
    min_frames: int
    text_dim: int  # width of the caption embeddings
    text_encoder: str  # the text encoder's name (its cache and the evaluator must match it)
    text_tokens: int  # tokens per caption the encoder gives; 1 = one pooled vector, no token sequence
    dataset_id: str  # a fingerprint of the dataset's layout and splits
    num_train: int
    num_val: int
    length_distribution: tuple  # every training item's length, sorted (generation draws lengths from it)

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "length_distribution", tuple(int(n) for n in self.length_distribution))

    @property
    def sample_frames(self) -> int:
        """Frames of a generated sample when no length is given."""
        return self.max_frames

    def make_normalizer(self) -> nn.Module:
        """An empty normaliser for this data; its statistics load with the checkpoint's weights."""
        return FeatureNormalizer(self.features)

    def to_positions(self, raw: torch.Tensor) -> torch.Tensor:
        """Denormalised features (..., N, F) -> joint positions (..., N, J, 3), metres, y up."""
        representation = get_representation(self.representation)
        joints = representation.to_joints(raw)  # (..., N, J, 3) in the dataset's units (KIT-ML: millimetres)
        return joints if representation.metres_per_unit == 1.0 else joints * representation.metres_per_unit


KINDS = {kind.kind: kind for kind in (KeypointData, TextMotionData)}


def describe_data(saved: dict) -> MotionData:
    """The data description saved in a checkpoint (`to_dict`), also one written by older versions of motiondiff."""
    kind = KINDS.get(saved.get("kind"))
    if kind is None:
        raise UserError(
            f"the checkpoint describes data of kind {saved.get('kind')!r}; known kinds: {', '.join(KINDS)}."
        )
    names = {field.name for field in fields(kind)}
    missing = sorted(names - set(saved))
    if missing:
        raise UserError(
            f"the checkpoint's data description lacks {', '.join(missing)}; it was not written by motiondiff."
        )
    return kind(**{key: value for key, value in saved.items() if key in names})

"""The typed description of a run's data: what the model, generation, rendering and evaluation need to know.

A DataModule describes its data with one of these dataclasses (`datamodule.info`); the LightningModule
saves it in the checkpoint's hyperparameters as plain data (`to_dict`, with its `kind`), and
`describe_data` reads it back, also from checkpoints written before these classes existed.
"""

from dataclasses import MISSING, asdict, dataclass, fields, replace
from typing import ClassVar, Optional

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d
from torch import nn

from motiondiff.core.errors import UserError
from motiondiff.data.kinematics.contacts import Contacts
from motiondiff.data.kinematics.foot_ik import contact_pins, leg_chains, pin_feet, upper_feet
from motiondiff.data.kinematics.quaternion import matrix_to_cont6d
from motiondiff.data.kinematics.skeleton import mean_acceleration, subset_parents, with_ancestors
from motiondiff.data.normalizers import FeatureNormalizer, KeypointNormalizer
from motiondiff.data.representations.local_rotations import (
    UP_BASIS,
    RotationLayout,
    decode,
    decode_pose,
    facing_positions,
    forward_kinematics,
    yaw_matrix,
)
from motiondiff.data.representations.registry import get_representation

# Frames: the std of the Gaussian that smooths the foot lock's correction of the root over time. Measured on the
# Gangnam-Style 3D dance (4000 steps, DDIM-50; skating / jitter ratios): no lock 2.13 / 1.18; sigma 0: 0.99 / 1.26;
# 0.5: 1.19 / 1.22; 0.8: 1.57 / 1.19 (the contact jitter it removes is frame-to-frame, so smoothing gives it back).
LOCK_SMOOTHING = 0.5
# Foot pinning by IK runs twice, the contacts found again on the first pass's result: pinning slows feet that slid
# just above the speed threshold into contact. Measured on four Crab-dance-long 3D dances (DDIM-100, root lock first;
# foot speed in contact, m/s, the data's about 0.011): no pinning 0.047, one pass 0.014, two 0.012.
PIN_PASSES = 2
# foot_ik=auto pins feet where pinning the training span itself (after the root lock) raises its mean acceleration
# by at most this factor. Measured (training spans): Crab-dance-long 1.01, Gangnam-Style 1.33, Walk-In-Circle 1.33
# (a human ankle rolls on through a contact, so holding it where the contact began bends the leg; it also raises
# the human spans' foot speed in contact, 0.084 -> 0.105 and 0.054 -> 0.082 m/s, where the crab's falls).
PIN_FIT_ACCELERATION = 1.1


def as_lists(value):
    """Tuples as lists, all the way down (checkpoint hyperparameters are plain data)."""
    return [as_lists(v) for v in value] if isinstance(value, (list, tuple)) else value


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
        return {"kind": self.kind, **{key: as_lists(v) for key, v in asdict(self).items()}}

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


@dataclass(frozen=True)
class RotationDanceData(MotionData):
    """Windows of one BVH clip (the 3D single dance) in local_rotations features, with the file's skeleton to write.

    Positions (`to_positions`) are the kept joints by forward kinematics on the file's offsets, turned y up and
    scaled by `metres_per_unit`; the file's hierarchy (names as declared, offsets, channels, End Sites) and the
    local rotations of the joints that are not kept travel here, so a checkpoint writes BVH without its source.
    """

    kind: ClassVar[str] = "bvh_dance"
    conditional: ClassVar[bool] = False
    units: ClassVar[str] = "metres (the BVH file's units x metres_per_unit), y up"
    window: int  # frames per window (N)
    bone_lengths: tuple  # length of each bone of the kept joints (Skeleton.bones() order), metres
    kept: tuple  # file joint index of each kept joint (the root first)
    with_positions: bool  # whether the features end with the kept joints' positions
    up: str  # the file's up axis, y or z
    metres_per_unit: float
    file_names: tuple  # every joint of the file, as declared (`mixamorig:Hips`)
    file_parents: tuple
    offsets: tuple  # (J, 3) per file joint, the file's units
    channels: tuple  # per file joint, its channel names in file order
    end_sites: tuple  # per file joint, its End Site offset (3,) or None
    fixed_rotations: tuple  # (J, 3, 3) local rotations of the joints that are not kept (the first training frame's)
    opening: tuple  # (3,) the source's root ground x, z and heading on its first frame, y-up coordinates
    foot_joints: tuple = ()  # kept-joint indices that touch the ground in the training span (data.kinematics.contacts)
    ground: float = 0.0  # the floor's height in the training span, metres
    body_height: float = 0.0  # the body's median vertical extent in the training span, metres
    pins_fit: bool = False  # whether pinning feet by IK keeps the training span's own motion (`pinning_fits`)

    def __post_init__(self):
        super().__post_init__()
        assert len(self.kept) == self.num_joints and self.dims == 3, (self.kept, self.num_joints, self.dims)
        assert self.features == self.layout.features, (self.features, self.layout.features)
        nested = (
            "bone_lengths",
            "kept",
            "file_names",
            "file_parents",
            "offsets",
            "channels",
            "end_sites",
            "foot_joints",
        )
        for key in (*nested, "fixed_rotations", "opening"):
            object.__setattr__(self, key, nested_tuple(getattr(self, key)))

    @property
    def layout(self) -> RotationLayout:
        return RotationLayout(tuple(self.kept), bool(self.with_positions))

    @property
    def sample_frames(self) -> int:
        """Frames of a generated sample."""
        return self.window

    def make_normalizer(self) -> nn.Module:
        """An empty normaliser for this data; its statistics load with the checkpoint's weights."""
        return FeatureNormalizer(self.features)

    def decode(self, raw) -> tuple:
        """Denormalised features (..., N, F) -> (local rotations (..., N, J, 3, 3), root path, positions), file
        units."""
        return decode(raw, self.offsets, self.file_parents, self.fixed_rotations, self.layout, self.opening, self.up)

    def to_positions(self, raw: torch.Tensor) -> torch.Tensor:
        """Denormalised features (..., N, F) -> the kept joints' positions (..., N, K, 3), metres, y up."""
        return self.kept_in_metres(self.decode(raw)[2])

    def kept_in_metres(self, positions):
        """`decode`'s positions of every file joint (..., N, J, 3), file coordinates (numpy or torch) -> the kept
        joints' (..., N, K, 3), metres, y up."""
        return self.in_metres(positions[..., list(self.kept), :])

    def in_metres(self, positions):
        """Positions (..., 3) in file coordinates (numpy or torch) -> metres, y up."""
        basis = UP_BASIS[self.up]
        if isinstance(positions, torch.Tensor):
            basis = torch.as_tensor(basis, dtype=positions.dtype, device=positions.device)
        return positions @ basis.T * self.metres_per_unit

    def foot_positions(self, raw: torch.Tensor) -> torch.Tensor:
        """Denormalised features (..., N, F) -> the foot joints' positions (..., N, feet, 3), metres, y up:
        `to_positions(raw)[..., foot_joints, :]`, by forward kinematics along the feet's chains only (11 of the
        walk's 65 file joints), for the foot contact term; its contacts are `foot_contacts`."""
        feet = [self.kept[k] for k in self.foot_joints]
        chain = with_ancestors(self.file_parents, feet)
        local, _, translations = decode_pose(
            raw, self.offsets, self.file_parents, self.fixed_rotations, self.layout, self.opening, self.up
        )
        chain_parents = subset_parents(self.file_parents, chain)
        positions = forward_kinematics(chain_parents, local[..., chain, :, :], translations[..., chain, :])
        return self.in_metres(positions[..., [chain.index(foot) for foot in feet], :])

    @property
    def contacts(self) -> Contacts:
        """The training span's foot contacts (joints, floor, body height), for positions from `to_positions`."""
        return Contacts(tuple(self.foot_joints), 1, float(self.ground), float(self.body_height), float(self.fps))

    @property
    def foot_contacts(self) -> Contacts:
        """`contacts` for positions from `foot_positions` (their columns are the feet)."""
        return replace(self.contacts, joints=tuple(range(len(self.foot_joints))))

    def lock_feet(self, raw: np.ndarray, contacts: Optional[Contacts] = None) -> np.ndarray:
        """Denormalised features (T, F) with the root's ground velocity corrected so that feet in contact (low and
        slow, `contacts`: default this data's) do not slide: between two frames the root moves back by the mean
        horizontal step of the planted feet. Rotations, heights and bone lengths are untouched."""
        contacts = self.contacts if contacts is None else contacts
        raw = np.asarray(raw, dtype=np.float64)
        if not contacts.joints or len(raw) < 2:
            return raw.copy()
        positions = self.to_positions(torch.from_numpy(raw)).numpy()  # (T, K, 3) metres, y up
        planted = contacts.in_contact(positions)  # (T - 1, feet)
        steps = np.diff(positions[:, list(contacts.joints)], axis=0)  # (T - 1, feet, 3)
        drift = (steps * planted[..., None]).sum(1) / np.maximum(planted.sum(1), 1)[:, None]  # (T - 1, 3)
        drift[:, 1] = 0.0  # heights stay
        if LOCK_SMOOTHING > 0:  # no jolt where a contact begins
            drift = gaussian_filter1d(drift, LOCK_SMOOTHING, axis=0, mode="nearest")
        turn = raw[:, 3]
        angle = self.opening[2] + np.cumsum(turn) - turn  # (T,) each frame's heading, as decode integrates it
        local = np.einsum("tab,tb->ta", yaw_matrix(-angle[:-1]), drift / self.metres_per_unit)  # facing frame, units
        locked = raw.copy()
        locked[:-1, 1] -= local[:, 0]
        locked[:-1, 2] -= local[:, 2]
        locked[-1, 1:3] = locked[-2, 1:3]  # the last frame repeats the velocity before it
        return locked

    def clean_feet(self, raw: np.ndarray, lock: bool, pin: bool) -> np.ndarray:
        """Denormalised features (T, F) after the foot clean-up that generation applies: the root lock (`lock`,
        `lock_feet`), then the legs' IK (`pin`, `pin_feet`; `pins` turns the foot_ik setting into it)."""
        raw = self.lock_feet(raw) if lock else np.asarray(raw, dtype=np.float64)
        return self.pin_feet(raw) if pin else raw

    def pins(self, setting) -> bool:
        """Whether the foot_ik `setting` (true, false or "auto": where the pins fit this data) pins feet."""
        if setting == "auto":
            return bool(self.pins_fit)
        if not isinstance(setting, bool):
            raise UserError(f"foot_ik={setting!r} is not one of true, false, auto (pin where it fits the data).")
        return setting

    def pinning_fits(self, raw: np.ndarray) -> bool:
        """Whether pinning the feet of the training span's features (T, F), after the root lock as generation does,
        leaves its motion as smooth as the root lock alone (mean acceleration within PIN_FIT_ACCELERATION): true
        for the crab's planted leg tips, false for human ankles, which roll through a contact (docs/dance3d.md)."""
        if not self.foot_joints:
            return False
        locked = self.lock_feet(raw)
        before, after = (self.to_positions(torch.from_numpy(r)).numpy() for r in (locked, self.pin_feet(locked)))
        return bool(mean_acceleration(after) <= PIN_FIT_ACCELERATION * mean_acceleration(before))

    def pin_feet(self, raw: np.ndarray, contacts: Optional[Contacts] = None) -> np.ndarray:
        """Denormalised features (T, F) with each planted foot held where its contact began, by turning the kept
        joints above it (data.kinematics.foot_ik), PIN_PASSES times with the contacts found again on the result;
        the root's path and every other joint untouched."""
        contacts = self.contacts if contacts is None else contacts
        pinned = np.asarray(raw, dtype=np.float64).copy()
        if not contacts.joints or len(raw) < 2:
            return pinned
        all_feet = [self.kept[k] for k in contacts.joints]
        feet = upper_feet(self.file_parents, all_feet)
        columns = [all_feet.index(foot) for foot in feet]  # of the contacts
        chains = leg_chains(self.file_parents, feet, set(self.kept[1:]))
        turned = sorted({joint for chain in chains for joint in chain})
        for _ in range(PIN_PASSES):
            local, path, positions = self.decode(pinned)  # file coordinates
            planted = contacts.in_contact(self.kept_in_metres(positions))[:, columns]  # (T - 1, F)
            translations = np.broadcast_to(np.asarray(self.offsets), positions.shape).copy()  # (T, J, 3)
            translations[:, 0] = path
            goals, weights = contact_pins(positions[:, feet], planted)
            local = pin_feet(self.file_parents, local, translations, feet, chains, goals, weights)
            for joint in turned:
                k = self.kept.index(joint)
                pinned[:, 4 + 6 * k : 10 + 6 * k] = matrix_to_cont6d(local[:, joint])
        if self.with_positions:
            layout, skeleton = self.layout, (self.offsets, self.file_parents, self.fixed_rotations)
            pinned[:, layout.positions] = facing_positions(pinned, *skeleton, layout, self.up).reshape(len(raw), -1)
        return pinned


def nested_tuple(value):
    """Lists (from a checkpoint) as tuples, all the way down; None and numbers unchanged."""
    if isinstance(value, (list, tuple)):
        return tuple(nested_tuple(v) for v in value)
    return value.tolist() if hasattr(value, "tolist") else value


KINDS = {kind.kind: kind for kind in (KeypointData, TextMotionData, RotationDanceData)}


def describe_data(saved: dict) -> MotionData:
    """The data description saved in a checkpoint (`to_dict`), also one written by older versions of motiondiff."""
    kind = KINDS.get(saved.get("kind"))
    if kind is None:
        raise UserError(
            f"the checkpoint describes data of kind {saved.get('kind')!r}; known kinds: {', '.join(KINDS)}."
        )
    names = {field.name for field in fields(kind)}
    required = {field.name for field in fields(kind) if field.default is MISSING}
    missing = sorted(required - set(saved))
    if missing:
        raise UserError(
            f"the checkpoint's data description lacks {', '.join(missing)}; it was not written by motiondiff."
        )
    return kind(**{key: value for key, value in saved.items() if key in names})

"""The 3D single dance: one BVH clip of any skeleton, cut into windows of local_rotations features.

The clip is read and resampled to `fps`, its kept joints chosen (`joints=auto`: fingers dropped when a human
joint map fits, every joint otherwise), and turned into features (data.representations.local_rotations). The
last `val_fraction` of the frames is held out; windows never straddle the split. Features are standardised
with a mean per feature and one std per group (a joint's six rotation numbers share one scale), fitted on
the training span; the statistics travel with the checkpoint (FeatureNormalizer buffers).
"""

import warnings
from dataclasses import replace
from typing import Optional

import lightning as L
import numpy as np
import torch

from motiondiff.core.errors import UserError
from motiondiff.data.dance_windows import (
    DanceSequence,
    WindowDataset,
    WindowLoaders,
    window_options,
    window_starts,
)
from motiondiff.data.formats.bvh import JOINT_MAPS, BvhClip, load_bvh, load_bvh_hierarchy, resample
from motiondiff.data.formats.bvh_write import POSITION_CHANNELS
from motiondiff.data.info import RotationDanceData
from motiondiff.data.kinematics.contacts import contacts_of
from motiondiff.data.kinematics.skeleton import Skeleton, bone_lengths, subset_parents
from motiondiff.data.normalizers import STD_FLOOR, FeatureNormalizer
from motiondiff.data.representations.local_rotations import (
    UP_BASIS,
    RotationLayout,
    decode_pose,
    encode,
    facing_positions,
    opening_of,
)
from motiondiff.data.spans import check_window_fits

HANDS = ("LeftHand", "RightHand")  # the wrists of the Mixamo and CMU maps; what hangs below them are fingers
JOINT_CHOICES = ("auto", "all")


def kept_joints(skeleton: Skeleton, joints: str = "auto") -> tuple:
    """Indices of the joints the features hold: `all`, or `auto` (without the fingers when a human map fits)."""
    if joints not in JOINT_CHOICES:
        raise UserError(f"dataset.joints='{joints}' is not an option; use one of {', '.join(JOINT_CHOICES)}.")
    human = any(set(mapping) <= set(skeleton.names) for mapping in JOINT_MAPS.values())
    if joints == "all" or not human:
        return tuple(range(skeleton.num_joints))
    hands = {skeleton.index(name) for name in HANDS}
    below_hand = set()
    for joint, parent in enumerate(skeleton.parents):  # parents come first, so one pass finds every descendant
        if parent in hands or parent in below_hand:
            below_hand.add(joint)
    return tuple(j for j in range(skeleton.num_joints) if j not in below_hand)


def group_std(features: np.ndarray, layout: RotationLayout) -> np.ndarray:
    """(F,): one std per feature group (the RMS deviation of its features), floored at STD_FLOOR."""
    std = np.empty(features.shape[1])
    centred = features - features.mean(axis=0)
    for group in layout.groups():
        std[group] = max(float(np.sqrt((centred[:, group] ** 2).mean())), STD_FLOOR)
    return std


LEG_METRES = 0.9  # hip to ankle of an adult, for the scale of a human skeleton in unknown units


def metres_per_unit(skeleton: Skeleton, given) -> float:
    """File units -> metres: `given`, or `auto`: a human skeleton's leg (hip to ankle) taken as LEG_METRES, and
    other skeletons' units taken as metres (BVH files do not state their units)."""
    if given != "auto":
        if not float(given) > 0:
            raise UserError(f"dataset.metres_per_unit={given} must be positive or 'auto'.")
        return float(given)
    if not {"LeftUpLeg", "LeftFoot"} <= set(skeleton.names):
        return 1.0
    joint, hip, length = skeleton.index("LeftFoot"), skeleton.index("LeftUpLeg"), 0.0
    while joint != hip:
        length, joint = length + float(np.linalg.norm(skeleton.offsets[joint])), skeleton.parents[joint]
        assert joint >= 0, "LeftFoot does not hang below LeftUpLeg"
    return LEG_METRES / length if length > 0 else 1.0


def writable_channels(channels, kept) -> tuple:
    """Per joint, the channels to write a generated dance with: the file's, completed where it could not hold the
    motion (the root gets X/Y/Z position channels; a kept joint gets all three rotation axes, the missing ones after
    the file's own)."""
    result = []
    for joint, listed in enumerate(channels):
        positions = [c for c in listed if c in POSITION_CHANNELS]
        rotations = [c for c in listed if c.endswith("rotation")]
        if joint == 0 and len(positions) < 3:
            positions = list(POSITION_CHANNELS)
        if joint in kept and len(rotations) < 3:
            rotations += [f"{axis}rotation" for axis in "XYZ" if f"{axis}rotation" not in rotations]
        result.append(tuple(positions + rotations))
    return tuple(result)


class Dance3DDataModule(WindowLoaders, L.LightningDataModule):
    """Train/validation windows of one BVH dance in 3D features, with what it takes to write BVH back."""

    def __init__(
        self,
        source: str,
        window: int = 48,
        stride: int = 2,
        val_fraction: float = 0.15,
        batch_size: int = 64,
        num_workers: int = 0,
        fps: float = 30.0,
        joints: str = "auto",
        with_positions: bool = False,
        up_axis: str = "y",
        metres_per_unit="auto",
    ):
        super().__init__()
        self.window, self.stride, self.batch_size = window_options(window, stride, batch_size, val_fraction)
        if up_axis not in UP_BASIS:
            raise UserError(f"dataset.up_axis='{up_axis}' is not an option; use y or z (the file's vertical axis).")
        if str(source) == "procedural" or not str(source).lower().endswith(".bvh"):
            raise UserError(f"dataset.source='{source}' is not a .bvh file; the 3D dance reads one BVH clip.")
        self.source, self.val_fraction, self.num_workers, self.fps = str(source), val_fraction, num_workers, fps
        self.joints, self.with_positions, self.up = joints, bool(with_positions), up_axis
        self.given_scale = metres_per_unit
        self.normalizer: Optional[FeatureNormalizer] = None
        self.clip: Optional[BvhClip] = None

    def setup(self, stage: Optional[str] = None) -> None:
        """Read the clip once, make its features, fit the standardisation on the training span, cut windows."""
        if self.clip is not None:
            return
        clip = resample(load_bvh(self.source), self.fps, source=f"BVH file '{self.source}'")
        skeleton = clip.skeleton
        if skeleton.num_joints < 2:
            raise UserError(
                f"'{self.source}' has a single joint; the 3D dance needs a skeleton of at least two joints (one bone)."
            )
        check_window_fits(clip.num_frames, self.window, self.val_fraction, self.source)
        self.hierarchy = load_bvh_hierarchy(self.source)
        rotating = [j for j, listed in enumerate(self.hierarchy.channels) if any("rotation" in c for c in listed)]
        kept = tuple(j for j in kept_joints(skeleton, self.joints) if j == 0 or j in rotating)  # others: identity
        self.layout = RotationLayout(kept, self.with_positions)
        self.offsets = clip.local_translations[0].copy()  # (J, 3): offsets with any non-root position channel applied
        if np.ptp(clip.local_translations[:, 1:], axis=0).max(initial=0.0) > 1e-6 * max(np.ptp(self.offsets), 1e-9):
            warnings.warn(
                f"'{self.source}' animates the position channels of joints below the root; the 3D dance keeps each "
                "joint's first-frame offset (bone lengths fixed), so that stretching is not reproduced.",
                stacklevel=2,
            )
        root = clip.local_translations[:, 0]  # (T, 3)
        raw = encode(clip.local_rotations, root, self.offsets, skeleton.parents, self.layout, self.up)  # (T, F)
        frames = len(raw)
        self.train_frames = check_window_fits(frames, self.window, self.val_fraction, self.source)
        training = raw[: self.train_frames]
        self.normalizer = FeatureNormalizer(self.layout.features).set_statistics(
            training.mean(axis=0), group_std(training, self.layout)
        )
        self.clip, self.raw = clip, raw
        features = self.normalizer.normalize(torch.from_numpy(raw).float())  # (T, F)
        starts = window_starts(self.train_frames, self.window, self.stride)
        self.train_set = WindowDataset(features[: self.train_frames], starts, self.window)
        val_starts = window_starts(frames - self.train_frames, self.window, self.stride)
        self.val_set = WindowDataset(features[self.train_frames :], val_starts, self.window)
        if len(self.train_set) < self.batch_size:
            warnings.warn(
                f"only {len(self.train_set)} training windows for dataset.batch_size={self.batch_size}; "
                "batches will be smaller than asked.",
                stacklevel=2,
            )
        local = facing_positions(training, self.offsets, skeleton.parents, self.fixed_rotations, self.layout, self.up)
        # One scale, as the 2D dance's: the RMS distance of the joints from the root's ground point (the body's size).
        self.descriptor_scale = float(np.sqrt((local**2).mean()))  # local: (T, K, 3)
        self.info = self.describe()
        positions = self.info.to_positions(torch.from_numpy(raw)).numpy()  # (T, K, 3) metres, y up: the clip itself
        self.sequence = DanceSequence(positions, self.info.joint_names, self.info.parents, self.info.fps)

    @property
    def fixed_rotations(self) -> np.ndarray:
        """(J, 3, 3): the local rotations that joints not kept hold (the first frame's)."""
        return self.clip.local_rotations[0]

    def describe(self) -> RotationDanceData:
        """What the model, the renderer and the BVH writer need to know about the data (`info` after setup)."""
        skeleton, kept = self.clip.skeleton, list(self.layout.kept)
        hierarchy = self.hierarchy
        scale = metres_per_unit(skeleton, self.given_scale)
        parents = subset_parents(skeleton.parents, kept)
        positions = self.clip.positions()[: self.train_frames, kept] @ UP_BASIS[self.up].T * scale  # (T, K, 3) y up
        contacts = contacts_of(positions, parents, up_index=1, fps=self.clip.fps)
        info = RotationDanceData(
            features=self.layout.features,
            num_joints=len(kept),
            dims=3,
            fps=float(self.clip.fps),
            joint_names=tuple(skeleton.names[j] for j in kept),
            parents=parents,
            feature_abs_max=float(self.train_set.features.abs().max()),
            source=self.source,
            window=self.window,
            bone_lengths=tuple(bone_lengths(positions, parents).mean(axis=0).tolist()),
            kept=tuple(kept),
            with_positions=self.with_positions,
            up=self.up,
            metres_per_unit=scale,
            file_names=hierarchy.declared_names,
            file_parents=skeleton.parents,
            offsets=np.concatenate([hierarchy.skeleton.offsets[:1], self.offsets[1:]]).tolist(),  # root: as declared
            channels=writable_channels(hierarchy.channels, kept),
            end_sites=tuple(None if site is None else tuple(site) for site in hierarchy.end_sites),
            fixed_rotations=self.fixed_rotations.tolist(),
            foot_joints=contacts.joints,
            ground=contacts.ground,
            body_height=contacts.height,
            opening=tuple(opening_of(self.clip.local_rotations, self.clip.local_translations[:, 0], self.up).tolist()),
        )
        return replace(info, pins_fit=info.pinning_fits(self.raw[: self.train_frames]))  # foot_ik=auto's choice

    def measure_space(self, features: np.ndarray) -> tuple:
        """Normalised features (T, F) -> (descriptors (T, 3K): facing-frame joint positions in one scale,
        positions (T, K, 3): global joints, metres, y up)."""
        raw = self.normalizer.denormalize(torch.as_tensor(features, dtype=torch.float32)).double().numpy()
        skeleton = self.clip.skeleton
        local = facing_positions(raw, self.offsets, skeleton.parents, self.fixed_rotations, self.layout, self.up)
        positions = self.info.to_positions(torch.from_numpy(raw)).numpy()  # from the source's opening
        return local.reshape(len(raw), -1) / self.descriptor_scale, positions

    def local_rotations(self, features: np.ndarray, opening_frame: int = 0) -> np.ndarray:
        """Normalised features (T, F) -> the kept joints' local rotations (T, K, 3, 3), file coordinates, the root's
        whole (what a BVH of the motion holds): its heading decoded from the opening of the source's frame
        `opening_frame` (0, as generated motion opens; the held-out span opens at the training span's end)."""
        raw = self.normalizer.denormalize(torch.as_tensor(features, dtype=torch.float32)).double().numpy()
        clip, start = self.clip, int(opening_frame)
        opening = opening_of(clip.local_rotations[start:], clip.local_translations[start:, 0], self.up)
        local, _, _ = decode_pose(
            raw, self.offsets, clip.skeleton.parents, self.fixed_rotations, self.layout, opening, self.up
        )
        return local[:, list(self.layout.kept)]  # (T, K, 3, 3)

    def lock_feet(self, features: np.ndarray, lock: bool, pin: bool) -> np.ndarray:
        """Normalised features (T, F) with the feet in contact locked (RotationDanceData.clean_feet: the root lock,
        the legs' IK), normalised."""
        raw = self.normalizer.denormalize(torch.as_tensor(features, dtype=torch.float32)).double().numpy()
        locked = torch.from_numpy(self.info.clean_feet(raw, lock, pin)).float()
        return self.normalizer.normalize(locked).double().numpy()

    def contact_setup(self) -> tuple:
        """(up axis index of `measure_space` positions, contact joints): y up, the feet found in the training span."""
        return 1, self.info.foot_joints

"""The motion an edit starts from, turned into the run's representation and normalisation.

Text-to-motion runs read a BVH (HumanML3D runs: its 22 SMPL joints, retargeted and turned into the 263
features as the dataset does), features `.npy` (T, F) in the run's representation, joints `.npy` (T, J, 3)
on the run's skeleton in metres, y up, at the run's frame rate (as `generate` writes them), or a sample of
a generation or edit folder. Dance runs read a BVH through the dataset's own keypoint path (its joint map
and camera), 2D keypoints `.npy` (T, J, 2), or a sample of a dance generation (`samples.npy`). Arrays are
read with `allow_pickle=False`; a source on another representation or skeleton is one sentence naming both.
"""

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from motiondiff.core.errors import UserError, first_sentence
from motiondiff.data.formats.bvh import load_bvh_keypoints
from motiondiff.data.formats.bvh_to_humanml3d import bvh_to_joints22
from motiondiff.data.info import KeypointData, MotionData, TextMotionData
from motiondiff.data.representations import humanml3d_features as hml
from motiondiff.data.representations import smplrifke
from motiondiff.data.representations.registry import get_representation
from motiondiff.training.diffusion_module import MotionDiffusion

log = logging.getLogger(__name__)

GENERATION_FILE = "generation.json"
WIDTH_NAMES = {263: "HumanML3D", 251: "KIT-ML", 205: "smplrifke"}


@dataclass(frozen=True)
class Source:
    """A source motion in the run's normalised features."""

    path: str
    form: str  # how it was read: bvh, features, joints, keypoints
    features: torch.Tensor  # (T, F) float32, normalised as the run's training data

    @property
    def frames(self) -> int:
        return self.features.shape[0]


def load_source(
    path: str, module: MotionDiffusion, dataset_cfg: DictConfig, sample: int = 0, up_axis: str = "auto"
) -> Source:
    """The motion at `path` (a file, or a generation folder's sample number `sample`) as the run's features; `up_axis`:
    a 3D BVH source's vertical axis (bvh_to_humanml3d.bvh_to_joints22)."""
    info, where = module.data, Path(str(path))
    if where.is_dir():
        where = generation_sample(where, info, sample)
    if not where.is_file():
        raise UserError(f"source={path} does not exist; give a BVH, a .npy motion or a generation folder.")
    if where.suffix.lower() == ".bvh":
        form, raw = "bvh", read_bvh(where, info, dataset_cfg, up_axis)
    elif where.suffix.lower() == ".npy":
        check_skeleton_record(where.parent / GENERATION_FILE, info, where)
        array = read_array(where)
        array = array[pick(sample, len(array), where)] if array.ndim == 4 else array  # (K, N, J, D): one sample
        form, raw = to_raw(array, info, where)
    else:
        raise UserError(f"source={path} is neither a .bvh, a .npy nor a generation folder; give one of those.")
    features = module.normalizer.normalize(torch.as_tensor(raw, dtype=torch.float32, device=module.device))
    if not bool(torch.isfinite(features).all()):
        raise UserError(f"source={path} holds NaN or infinite values; clean the motion first.")
    largest = float(features.abs().max())
    if largest > 3 * info.feature_abs_max:
        log.warning(
            "source=%s reaches %.1f in the run's normalisation, %.0f x the training data's largest (%.1f): check its "
            "units, scale and view against the training data.",
            path,
            largest,
            largest / info.feature_abs_max,
            info.feature_abs_max,
        )
    return Source(str(path), form, features.reshape(len(raw), info.features).cpu())  # (T, F)


def generation_sample(folder: Path, info: MotionData, sample: int) -> Path:
    """The file holding sample number `sample` of a generation folder (text: sample_XX.npy; dance: samples.npy)."""
    record = folder / GENERATION_FILE
    if not record.is_file():
        raise UserError(f"source={folder} is a folder without {GENERATION_FILE}; give a generation or edit folder.")
    if isinstance(info, KeypointData):
        return folder / "samples.npy"
    samples = json.loads(record.read_text()).get("samples") or []
    entry = samples[pick(sample, len(samples), folder)]
    if "joints" not in entry:
        raise UserError(f"source={folder} holds 2D dance samples, but this run makes 3D motions; give a 3D motion.")
    return folder / entry["joints"]


def pick(sample: int, count: int, where: Path) -> int:
    """`sample` when it indexes one of `count` samples, else a UserError."""
    if isinstance(sample, bool) or not isinstance(sample, int) or not 0 <= sample < count:
        raise UserError(f"source_sample={sample} is not one of the {count} samples in '{where}'; use 0..{count - 1}.")
    return sample


def check_skeleton_record(record: Path, info: MotionData, where: Path) -> None:
    """A generation folder's recorded skeleton must be the run's (generate and edit write it in generation.json)."""
    if not record.is_file():
        return
    names = (json.loads(record.read_text()).get("skeleton") or {}).get("joint_names")
    if names is not None and tuple(names) != tuple(info.joint_names):
        raise UserError(
            f"source '{where}' is on a {len(names)}-joint skeleton ({', '.join(names[:3])}, ...) but the run's is "
            f"{info.num_joints} joints ({', '.join(info.joint_names[:3])}, ...); give a motion on the run's skeleton."
        )


def read_array(path: Path) -> np.ndarray:
    """A plain numeric array from a .npy file, never unpickled."""
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, EOFError) as error:
        raise UserError(
            f"'{path}' is not a plain numeric .npy array ({first_sentence(error)}); save it with np.save."
        ) from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "iuf":
        raise UserError(f"'{path}' holds no plain numeric array; save the motion with np.save.")
    return array


def read_bvh(path: Path, info: MotionData, dataset_cfg: DictConfig, up_axis: str = "auto") -> np.ndarray:
    """A BVH as the run's raw data: dance keypoints (T, J, 2) by the dataset's path, or HumanML3D features."""
    if isinstance(info, KeypointData):
        camera = dict(dataset_cfg.get("camera") or {})
        keypoints, names, _, _ = load_bvh_keypoints(path, info.fps, dataset_cfg.get("joint_map", "auto"), **camera)
        if tuple(names) != info.joint_names:
            raise UserError(
                f"the BVH '{path}' gives {len(names)} joints ({', '.join(names[:3])}, ...) but the run was trained "
                f"on {info.num_joints} ({', '.join(info.joint_names[:3])}, ...); use a BVH with the training joints."
            )
        return keypoints  # (T, J, 2)
    if info.representation != "humanml3d":
        raise UserError(
            f"a BVH source becomes HumanML3D features (22 SMPL joints) but the run makes {name_of(info)} features; "
            f"give joints (T, {info.num_joints}, 3) or features (T, {info.features}) instead."
        )
    return joints_to_features(bvh_to_joints22(path, up_axis=up_axis, setting="source_up_axis"), info)


def to_raw(array: np.ndarray, info: MotionData, where: Path) -> tuple:
    """(form, the run's raw data) of an array, or a UserError naming what it holds and what the run needs."""
    if isinstance(info, KeypointData) and array.shape[1:] == (info.num_joints, info.dims):
        return "keypoints", array.astype(np.float32)  # (T, J, 2)
    if isinstance(info, TextMotionData) and array.ndim == 2 and array.shape[1] == info.features:
        return "features", array.astype(np.float32)  # (T, F)
    if isinstance(info, TextMotionData) and array.shape[1:] == (info.num_joints, 3):
        return "joints", joints_to_features(array, info)
    raise UserError(
        f"source '{where}' holds {held(array)} but the run makes {needs(info)}; give {needs(info, True)} instead."
    )


def joints_to_features(joints: np.ndarray, info: TextMotionData) -> np.ndarray:
    """Joints (T, J, 3) in metres, y up -> the run's raw features (T-1, F) for HumanML3D / KIT-ML, (T, F) smplrifke."""
    if info.representation == "smplrifke":
        return smplrifke.joints_to_features(joints)
    skeleton = hml.skeleton_of_width(info.features)
    units = joints / get_representation(info.representation).metres_per_unit  # KIT-ML: millimetres
    return hml.joints_to_features(units, target_offsets=skeleton.reference_offsets, skeleton=skeleton)


def name_of(info: TextMotionData) -> str:
    return WIDTH_NAMES.get(info.features, info.representation)


def held(array: np.ndarray) -> str:
    """What an array looks like it holds, for messages."""
    if array.ndim == 3 and array.shape[2] == 2:
        return f"2D keypoints {array.shape}"
    if array.ndim == 3 and array.shape[2] == 3:
        return f"3D joints of {array.shape[1]} joints {array.shape}"
    if array.ndim == 2 and array.shape[1] in WIDTH_NAMES:
        return f"{WIDTH_NAMES[array.shape[1]]} features {array.shape}"
    return f"an array of shape {array.shape}"


def needs(info: MotionData, all_forms: bool = False) -> str:
    """What the run edits (or every form of source it reads), for messages."""
    if isinstance(info, KeypointData):
        kind = f"2D keypoints of {info.num_joints} joints"
        return f"{kind} (T, {info.num_joints}, {info.dims}) or a BVH" if all_forms else kind
    kind = f"{name_of(info)} features ({info.features})"
    if not all_forms:
        return kind
    return f"features (T, {info.features}), joints (T, {info.num_joints}, 3) in metres y up, or a generation folder"

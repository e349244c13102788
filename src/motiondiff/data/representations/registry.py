"""The motion feature representations a text-motion dataset can hold, and how to get joints back.

A run's `data_info["representation"]` names one of these; `to_joints` turns (denormalised)
features (..., T, features) into joint positions (..., T, num_joints, 3), y up, facing +z, in the
dataset's own units (metres; millimetres for kit, whose `metres_per_unit` is 0.001) — numpy in,
numpy out; torch in, torch out.
"""

from dataclasses import dataclass
from typing import Callable

from motiondiff.core.errors import UserError
from motiondiff.data.kinematics.skeleton import KIT21_NAMES, KIT21_PARENTS, SMPL22_NAMES, SMPL22_PARENTS
from motiondiff.data.representations import humanml3d_features, smplrifke
from motiondiff.data.representations.feature_skeletons import KIT_SKELETON


@dataclass(frozen=True)
class Representation:
    """A feature layout: its width, the skeleton it encodes, its frame rate and its joint recovery."""

    name: str
    features: int
    num_joints: int
    joint_names: tuple
    parents: tuple
    fps: float
    to_joints: Callable
    metres_per_unit: float = 1.0  # metres in one unit of the `to_joints` positions

    def __post_init__(self):
        assert len(self.joint_names) == len(self.parents) == self.num_joints


REPRESENTATIONS = {
    "humanml3d": Representation(
        "humanml3d",
        humanml3d_features.FEATURES,
        humanml3d_features.NUM_JOINTS,
        SMPL22_NAMES,
        SMPL22_PARENTS,
        float(humanml3d_features.FPS),
        humanml3d_features.features_to_joints,
    ),
    "smplrifke": Representation(
        "smplrifke",
        smplrifke.FEATURES,
        smplrifke.NUM_JOINTS,
        smplrifke.SMPL24_NAMES,
        smplrifke.SMPL24_PARENTS,
        float(smplrifke.FPS),
        smplrifke.features_to_joints,
    ),
    "kit": Representation(
        "kit",
        KIT_SKELETON.features,
        KIT_SKELETON.num_joints,
        KIT21_NAMES,
        KIT21_PARENTS,
        float(KIT_SKELETON.fps),
        humanml3d_features.kit_features_to_joints,
        metres_per_unit=0.001,
    ),
}


def get_representation(name: str) -> Representation:
    """The representation called `name`, or a UserError listing the valid names."""
    if name not in REPRESENTATIONS:
        raise UserError(f"unknown motion representation '{name}'; valid names: {', '.join(sorted(REPRESENTATIONS))}.")
    return REPRESENTATIONS[name]

"""The skeletons the HumanML3D-style features are defined on: HumanML3D (T2M, 22 joints) and KIT-ML (21).

A `FeatureSkeleton` holds everything the feature code (`humanml3d_features`) needs to know about a
dataset's body: its tree, the order inverse kinematics follows, each bone's rest direction, which
joints define the facing and the foot contacts, the skeleton every motion is retargeted to, and the
dataset's units, frame rate and contact threshold. The constants reproduce each dataset's own
preparation, quirks included, because its released features and statistics were computed with them.
"""

from dataclasses import dataclass

import numpy as np

from motiondiff.data.kinematics.skeleton import KIT21_NAMES, KIT21_PARENTS, SMPL22_NAMES, SMPL22_PARENTS

_AXES = {
    "0": (0.0, 0.0, 0.0),
    "+x": (1.0, 0.0, 0.0),
    "-x": (-1.0, 0.0, 0.0),
    "+y": (0.0, 1.0, 0.0),
    "-y": (0.0, -1.0, 0.0),
    "+z": (0.0, 0.0, 1.0),
}


def axis_directions(axes: str) -> np.ndarray:
    """Unit rest directions (J, 3) float64 from one axis name per joint, e.g. "0 +x -y"."""
    return np.array([_AXES[axis] for axis in axes.split()], dtype=np.float64)


@dataclass(frozen=True, eq=False)
class FeatureSkeleton:
    """A dataset's body and the constants its feature preparation uses (lengths in `units`)."""

    name: str  # the dataset, as messages name it
    joint_order: str  # how messages name the joint order
    joint_names: tuple
    parents: tuple
    kinematic_chains: tuple  # IK follows these in order; every chain's rotations start from the root's
    raw_offsets: np.ndarray  # (J, 3): rest direction of the bone into each joint (the root has none)
    face_joints: tuple  # (right hip, left hip, right shoulder, left shoulder), as the dataset labels them
    foot_joints: tuple  # the 4 contact joints in feature order: left ankle, left toe, right ankle, right toe
    leg_joints: tuple  # retargeting scales the root path by the summed lengths of the bones into these joints
    reference_bone_lengths: np.ndarray  # (J-1,): bones into joints 1..J-1 of the dataset's target skeleton
    fps: float
    feet_threshold: float  # a foot joint is in contact when its squared step to the next frame is below this
    units: str  # of positions, bone lengths and velocities: "metres" or "millimetres"
    facing_smoothing: int = 20  # sigma (frames) of the Gaussian that smooths the facing into the root rotation

    def __post_init__(self):
        joints = len(self.parents)
        assert len(self.joint_names) == joints and self.raw_offsets.shape == (joints, 3), self.name
        assert self.reference_bone_lengths.shape == (joints - 1,), self.name
        assert len(self.face_joints) == 4 and len(self.foot_joints) == 4 and len(self.leg_joints) == 2
        chains = self.kinematic_chains
        assert all(self.parents[child] == parent for chain in chains for parent, child in zip(chain, chain[1:]))
        assert sorted(child for chain in chains for child in chain[1:]) == list(range(1, joints)), self.name
        self.raw_offsets.setflags(write=False)
        self.reference_bone_lengths.setflags(write=False)

    @property
    def num_joints(self) -> int:
        return len(self.parents)

    @property
    def features(self) -> int:
        """Width of a feature frame: 12 * joints - 1."""
        return 12 * self.num_joints - 1

    @property
    def reference_offsets(self) -> np.ndarray:
        """The dataset's target offsets (J, 3): each bone's rest direction scaled to its reference length."""
        return self.raw_offsets * np.concatenate([[0.0], self.reference_bone_lengths])[:, None]


# HumanML3D: the SMPL body in metres at 20 fps. Bone lengths of its target skeleton (000021) measured on
# the sample motion 012314 (constant over its frames to 2e-6 m). The facing and contact joints are SMPL's.
T2M_SKELETON = FeatureSkeleton(
    name="HumanML3D",
    joint_order="SMPL 22-joint",
    joint_names=SMPL22_NAMES,
    parents=SMPL22_PARENTS,
    kinematic_chains=(
        (0, 2, 5, 8, 11),
        (0, 1, 4, 7, 10),
        (0, 3, 6, 9, 12, 15),
        (9, 14, 17, 19, 21),
        (9, 13, 16, 18, 20),
    ),
    raw_offsets=axis_directions("0 +x -x +y -y -y +y -y -y +y +z +z +y +x -x +z -y -y -y -y -y -y"),
    face_joints=(2, 1, 17, 16),
    foot_joints=(7, 10, 8, 11),
    leg_joints=(5, 8),  # right knee, right ankle
    reference_bone_lengths=np.array(
        [
            0.103074,
            0.109883,
            0.131568,
            0.393623,
            0.390188,
            0.143190,
            0.432433,
            0.425643,
            0.057365,
            0.143382,
            0.149419,
            0.219360,
            0.137487,
            0.143383,
            0.103039,
            0.131614,
            0.122984,
            0.256840,
            0.263092,
            0.266012,
            0.269876,
        ]
    ),
    fps=20,
    feet_threshold=0.002,  # m^2: a foot joint moving under 4.5 cm per frame is in contact
    units="metres",
)

# KIT-ML: the MMM reference body (about 1 m tall) in millimetres, never converted, at 12.5 fps (100 Hz
# capture taken every 8th frame). The dataset is mirrored (see KIT21_NAMES): its code takes LH (11) and
# LS (5) as the right hip and shoulder and LMrot/LF (14, 15) as the right foot, and so does this. The raw
# offsets are the dataset's, which point LS and LH to +x although the data has them at -x: that does not
# change positions, only those joints' rotation features, which must match the released ones. The
# reference lengths are the MMM model's segment lengths, the same for every KIT-ML motion (derived from
# the model, not measured on released files). The contact threshold is the dataset's 0.05 compared with
# squared millimetres (a step under 0.22 mm), so KIT-ML contacts are almost always 0: kept to match it.
KIT_SKELETON = FeatureSkeleton(
    name="KIT-ML",
    joint_order="KIT-ML 21-joint (MMM)",
    joint_names=KIT21_NAMES,
    parents=KIT21_PARENTS,
    kinematic_chains=(
        (0, 11, 12, 13, 14, 15),
        (0, 16, 17, 18, 19, 20),
        (0, 1, 2, 3, 4),
        (3, 5, 6, 7),
        (3, 8, 9, 10),
    ),
    raw_offsets=axis_directions("0 +y +y +y +y +x -y -y -x -y -y +x -y -y +z +z -x -y -y +z +z"),
    face_joints=(11, 16, 5, 8),
    foot_joints=(19, 20, 14, 15),
    leg_joints=(17, 18),  # RK, RA: 245 + 246 mm
    reference_bone_lengths=np.array(
        [80.0, 120.0, 44.0, 30.0]  # BP BT BLN BUN
        + [110.0, 188.0, 145.0, 110.0, 188.0, 145.0]  # LS LE LW RS RE RW
        + [52.0, 245.0, 246.0, 30.27359, 56.28934]  # LH LK LA LMrot LF
        + [52.0, 245.0, 246.0, 30.27359, 56.28735]  # RH RK RA RMrot RF
    ),
    fps=12.5,
    feet_threshold=0.05,  # mm^2, as the dataset
    units="millimetres",
)

SKELETONS = (T2M_SKELETON, KIT_SKELETON)

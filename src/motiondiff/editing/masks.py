"""Which feature columns hold which joint, per representation, and the named joint groups an edit regenerates.

A `FeatureLayout` gives each joint its columns of a feature frame and names the root trajectory's columns:

- HumanML3D (263) and KIT-ML (251), by `humanml3d_features.feature_slices`: joint j > 0 owns its ric position,
  its 6D rotation and its local velocity; the root joint owns the root features (rotation velocity, planar
  velocity, height) and its own local velocity; each of the 4 foot contacts belongs to its foot joint (left
  ankle, left toe, right ankle, right toe), so a foot's contact is kept or regenerated with the foot.
- smplrifke (205): the root owns height, planar velocity, heading velocity and its 6D rotation; joints 1..21 own
  their rotation and position; the hands (22, 23) own their position.
- 2D keypoints (the dance): joint j owns its x and y.

The root trajectory (the `path` edit) is the root's height, planar velocity and turning (HumanML3D and KIT-ML also
the root's local velocity, the same motion seen in the root's frame); for keypoints, the root joint's x and y.

Joint groups come from the joint names of the run's data description: SMPL-style names (`left_elbow`), the
Mixamo/CMU names a BVH brings (`LeftForeArm`) and KIT-ML's (whose `L...` joints sit on the body's right, see
`data.kinematics.skeleton`). `lower_body` is the root and the legs; `upper_body` the spine above the root, the
head and the arms.
"""

import difflib
import re
from dataclasses import dataclass

import numpy as np

from motiondiff.core.errors import UserError
from motiondiff.data.info import KeypointData, MotionData, TextMotionData
from motiondiff.data.representations import humanml3d_features as hml
from motiondiff.data.representations import smplrifke

# KIT-ML's joints by body part (the dataset is mirrored: its "L" joints are the body's right).
KIT_PARTS = {
    **dict.fromkeys(("root", "BP", "BT"), "torso"),
    **dict.fromkeys(("BLN", "BUN"), "head"),
    **dict.fromkeys(("LS", "LE", "LW"), "right_arm"),
    **dict.fromkeys(("RS", "RE", "RW"), "left_arm"),
    **dict.fromkeys(("LH", "LK", "LA", "LMrot", "LF"), "right_leg"),
    **dict.fromkeys(("RH", "RK", "RA", "RMrot", "RF"), "left_leg"),
}
ARM_WORDS = ("collar", "clavicle", "shoulder", "arm", "elbow", "wrist", "hand", "finger", "thumb", "index", "pinky")
LEG_WORDS = ("hip", "thigh", "leg", "knee", "shin", "ankle", "foot", "toe", "heel")
HEAD_WORDS = ("neck", "head", "jaw", "eye", "nose")
TORSO_WORDS = ("pelvis", "hips", "root", "spine", "chest", "lowerback", "upperback", "waist", "abdomen", "torso")
# Each group as the parts it unites; "root" is the joint whose parent is -1.
GROUPS = {
    "left_arm": ("left_arm",),
    "right_arm": ("right_arm",),
    "arms": ("left_arm", "right_arm"),
    "left_leg": ("left_leg",),
    "right_leg": ("right_leg",),
    "legs": ("left_leg", "right_leg"),
    "head": ("head",),
    "torso": ("torso", "root"),
    "lower_body": ("root", "left_leg", "right_leg"),
    "upper_body": ("torso", "head", "left_arm", "right_arm"),
}


@dataclass(frozen=True)
class FeatureLayout:
    """The columns of a feature frame that hold each joint, and those of the root trajectory."""

    features: int  # F
    joint_names: tuple
    joint_columns: tuple  # per joint, a tuple of column indices
    root_columns: tuple  # the root trajectory (the `path` edit keeps these)

    def __post_init__(self):
        owned = sorted(column for columns in self.joint_columns for column in columns)
        assert owned == list(range(self.features)), "every column belongs to exactly one joint"
        assert len(self.joint_columns) == len(self.joint_names)

    def columns(self, joints) -> np.ndarray:
        """(F,) bool: True on the columns of the joints (indices) given."""
        mask = np.zeros(self.features, dtype=bool)
        for joint in joints:
            mask[list(self.joint_columns[joint])] = True
        return mask

    def root_mask(self) -> np.ndarray:
        """(F,) bool: True on the root trajectory's columns."""
        mask = np.zeros(self.features, dtype=bool)
        mask[list(self.root_columns)] = True
        return mask


def check_editable(info: MotionData) -> None:
    """UserError for data whose joint columns editing does not know (the 3D dance)."""
    if not isinstance(info, (KeypointData, TextMotionData)):
        raise UserError(
            f"editing knows no joint columns for {info.kind} data (the 3D dance); edit a 2D dance or a text run."
        )


def feature_layout(info: MotionData) -> FeatureLayout:
    """The layout of a run's features: HumanML3D / KIT-ML, smplrifke or 2D keypoints."""
    if isinstance(info, KeypointData):
        return keypoint_layout(info)
    check_editable(info)
    if info.representation in ("humanml3d", "kit"):
        return humanml3d_layout(info)
    if info.representation == "smplrifke":
        return smplrifke_layout(info)
    raise UserError(
        f"editing knows no joint columns for the representation '{info.representation}'; "
        "use a humanml3d, kit or smplrifke run."
    )


def keypoint_layout(info: KeypointData) -> FeatureLayout:
    """Joint j: columns j*D .. j*D + D - 1 (the normaliser flattens (J, D) joint-major)."""
    dims, root = info.dims, info.parents.index(-1)
    columns = tuple(tuple(range(j * dims, (j + 1) * dims)) for j in range(info.num_joints))
    return FeatureLayout(info.features, info.joint_names, columns, columns[root])


def humanml3d_layout(info: TextMotionData) -> FeatureLayout:
    """The 12J - 1 HumanML3D-style columns by joint (module docstring)."""
    skeleton = hml.skeleton_of_width(info.features)
    count, parts = skeleton.num_joints, hml.feature_slices(skeleton.num_joints)
    assert skeleton.joint_names == info.joint_names, (skeleton.joint_names, info.joint_names)
    root = [*_span(parts["root_rot_velocity"]), *_span(parts["root_linear_velocity"]), *_span(parts["root_height"])]
    velocity = _span(parts["local_velocities"])
    columns = [root + velocity[0:3]]
    for joint in range(1, count):
        ric = _span(parts["ric_positions"])[(joint - 1) * 3 : joint * 3]
        rotation = _span(parts["rotations"])[(joint - 1) * 6 : joint * 6]
        columns.append(ric + rotation + velocity[joint * 3 : joint * 3 + 3])
    for contact, foot in zip(_span(parts["foot_contact"]), skeleton.foot_joints):
        columns[foot].append(contact)
    return FeatureLayout(info.features, info.joint_names, tuple(map(tuple, columns)), tuple(root + velocity[0:3]))


def smplrifke_layout(info: TextMotionData) -> FeatureLayout:
    """The 205 smplrifke columns by joint (module docstring)."""
    parts = smplrifke.feature_slices()
    rotations, positions = _span(parts["rotations"]), _span(parts["joint_positions"])
    root = [*_span(parts["root_height"]), *_span(parts["root_velocity"]), *_span(parts["heading_velocity"])]
    columns = [root + rotations[0:6]]
    for joint in range(1, smplrifke.NUM_JOINTS):
        rotation = rotations[joint * 6 : joint * 6 + 6]  # empty for the hands, which have no rotation
        columns.append(rotation + positions[(joint - 1) * 3 : joint * 3])
    return FeatureLayout(info.features, info.joint_names, tuple(map(tuple, columns)), tuple(root))


def _span(part: slice) -> list:
    return list(range(part.start, part.stop))


def body_part(name: str) -> "str | None":
    """The part a joint name belongs to (left_arm, right_leg, head, torso, ...), or None when the name says none."""
    if name in KIT_PARTS:
        return KIT_PARTS[name]
    bare = name.rsplit(":", 1)[-1]  # without a namespace (mixamorig:)
    lowered = name.lower().replace(":", "_")
    side = next((s for s in ("left", "right") if lowered.startswith((s, s[0] + "_")) or f"_{s}" in lowered), None)
    if side is None and re.match(r"[LR][A-Z]", bare):  # CMU's LHipJoint, RThumb
        side = "left" if bare[0] == "L" else "right"
    if side is not None and any(word in lowered for word in ARM_WORDS):
        return f"{side}_arm"
    if side is not None and any(word in lowered for word in LEG_WORDS):
        return f"{side}_leg"
    if any(word in lowered for word in HEAD_WORDS):  # a side's eye is the head's
        return "head"
    return "torso" if any(word in lowered for word in TORSO_WORDS) else None


def group_joints(group: str, joint_names: tuple, parents: tuple) -> tuple:
    """The indices of the joints in a named group (GROUPS), by their names; UserError when it names none of them."""
    root = parents.index(-1)
    parts = [("root" if joint == root else body_part(name)) for joint, name in enumerate(joint_names)]
    joints = tuple(joint for joint, part in enumerate(parts) if part in GROUPS[group])
    if not joints:
        shown = ", ".join(joint_names[:8]) + (", ..." if len(joint_names) > 8 else "")
        raise UserError(
            f"edit.joints={group} matches none of the run's joints ({shown}); "
            "give the joints by name, e.g. edit.joints=[" + ",".join(joint_names[:2]) + "]."
        )
    return joints


def select_joints(selection, joint_names: tuple, parents: tuple) -> tuple:
    """The joint indices `selection` names: a group (GROUPS), one joint name or a list of joint names."""
    if isinstance(selection, str) and selection in GROUPS:
        return group_joints(selection, joint_names, parents)
    names = [selection] if isinstance(selection, str) else list(selection or [])
    if not names:
        raise UserError(f"edit.joints is empty; give a group ({', '.join(GROUPS)}) or a list of joint names.")
    for name in names:
        if name not in joint_names:
            close = difflib.get_close_matches(str(name), [*GROUPS, *joint_names], n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}? " if close else ""
            raise UserError(
                f"edit.joints names '{name}', neither a joint group nor one of the run's joints; {hint}"
                f"groups: {', '.join(GROUPS)}; joints: {', '.join(joint_names)}."
            )
    return tuple(sorted({joint_names.index(name) for name in names}))

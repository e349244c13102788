"""SMPL parameters from joint positions, and the AMASS / HumanML3D file that holds them.

`joints_to_smpl` solves the 22 SMPL joints' local rotations by inverse kinematics (`kinematics.inverse`) on the
body model's own rest skeleton (`rest_joints`, J = J_regressor @ v_template for betas 0, from `smpl_model`);
the hands (joints 22, 23) and the joints without a child in the 22-joint tree (feet, head, wrists) stay at
rest. There is no export without the model: the poses are rotations away from *its* rest pose and `trans`
depends on its pelvis rest position J0 (SMPL's is about 0.22 m below the mesh origin), so parameters solved
on a guessed skeleton would pose the real body visibly wrong without any error; `smpl_model` says where to
get the model. SMPL rotates the body about J0: its pelvis lands at J0 + trans, so trans = pelvis - J0.

The file is AMASS's layout, which HumanML3D's preparation reads: np.savez(poses (T, 156) SMPL+H axis-angle,
trans (T, 3), betas (10,), mocap_framerate, gender). AMASS is z up. HumanML3D's raw_pose_processing turns
AMASS joints p into its y-up joints by `p @ [[1,0,0],[0,0,1],[0,1,0]]` then `x *= -1`, i.e. (x, y, z) ->
(-x, z, y): the half turn HUMANML3D_FROM_AMASS (its own inverse; a -90 degree turn about x followed by a half
turn about the vertical). `up="z"` writes AMASS's frame, so that file -> SMPL joints -> HumanML3D's two lines
gives back our y-up joints; `up="y"` keeps our frame (y up, facing +z, SMPL's own rest frame).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from motiondiff.core.checks import frame_rate
from motiondiff.core.errors import UserError
from motiondiff.core.files import write_new_file
from motiondiff.data.kinematics.inverse import solve_rotations
from motiondiff.data.kinematics.skeleton import SMPL22_PARENTS

HUMANML3D_FROM_AMASS = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])  # y-up = this @ z-up
NUM_BETAS = 10
UPS = ("z", "y")
GENDERS = ("neutral", "male", "female")


@dataclass(frozen=True, eq=False)
class SmplParams:
    """One motion as SMPL parameters (AMASS layout); `poses` and `trans` are in the frame the file is written in."""

    poses: np.ndarray  # (T, 72) float32 axis-angle: root orientation, then 23 joints' local rotations
    trans: np.ndarray  # (T, 3) float32 metres: the pelvis is at J0 + trans
    betas: np.ndarray  # (10,) float32 shape coefficients
    fps: float
    gender: str = "neutral"

    def __post_init__(self):
        frames = len(self.poses)
        assert self.poses.shape == (frames, 72) and self.trans.shape == (frames, 3), (
            self.poses.shape,
            self.trans.shape,
        )
        assert self.betas.shape == (NUM_BETAS,), self.betas.shape


def check_positions(positions) -> np.ndarray:
    """Positions (T, 22, 3) float64; UserError on another shape or NaN/inf."""
    positions = np.asarray(positions, dtype=np.float64)
    if positions.ndim != 3 or positions.shape[1:] != (len(SMPL22_PARENTS), 3) or len(positions) < 1:
        raise UserError(
            f"SMPL export needs joint positions of shape (frames, 22, 3) on the SMPL 22-joint tree, got "
            f"{positions.shape}; pass HumanML3D-style joints (metres, y up)."
        )
    if not np.isfinite(positions).all():
        raise UserError("joint positions for SMPL export contain NaN or infinite values; clean them first.")
    return positions


def check_choice(name: str, value, choices) -> str:
    """value if it is one of choices; UserError naming them otherwise."""
    if value not in choices:
        raise UserError(f"{name}={value!r} is not one of {list(choices)}; pass one of them.")
    return value


def joints_to_smpl(positions, fps, rest_joints, up: str = "z", gender: str = "neutral") -> SmplParams:
    """SMPL parameters for positions (T, 22, 3) (metres, y up, facing +z) on the model's rest joints (24, 3)."""
    positions, fps = check_positions(positions), frame_rate(fps)
    check_choice("up", up, UPS)
    check_choice("gender", gender, GENDERS)
    rest = np.asarray(rest_joints, dtype=np.float64)
    if rest.shape != (24, 3) or not np.isfinite(rest).all():
        raise UserError(f"rest_joints must be the SMPL model's 24 rest joints (24, 3), got {rest.shape}.")
    parents = np.array(SMPL22_PARENTS)
    offsets = rest[: len(parents)] - np.where(parents[:, None] >= 0, rest[np.maximum(parents, 0)], 0.0)  # (22, 3)
    local = solve_rotations(positions, SMPL22_PARENTS, offsets)  # (T, 22, 3, 3)
    pelvis = positions[:, 0]  # (T, 3)
    if up == "z":  # AMASS's frame: the whole body turned by the inverse of HumanML3D's turn (the same matrix)
        local[:, 0] = HUMANML3D_FROM_AMASS @ local[:, 0]
        pelvis = pelvis @ HUMANML3D_FROM_AMASS.T
    frames = len(positions)
    rotvecs = np.zeros((frames, 24, 3))
    rotvecs[:, :22] = Rotation.from_matrix(local.reshape(-1, 3, 3)).as_rotvec().reshape(frames, 22, 3)
    return SmplParams(
        poses=rotvecs.reshape(frames, 72).astype(np.float32),
        trans=(pelvis - rest[0]).astype(np.float32),
        betas=np.zeros(NUM_BETAS, dtype=np.float32),
        fps=fps,
        gender=gender,
    )


def write_smpl_npz(path, params: SmplParams) -> Path:
    """Write params as an AMASS-layout .npz atomically; UserError if the file exists (never overwritten)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise UserError(f"SMPL parameters are written as .npz, got '{path}'; give a path ending in .npz.")
    if path.exists():
        raise UserError(f"'{path}' already exists: SMPL export never overwrites a file; give a new path.")
    return write_new_file(path, lambda temporary: _save_npz(temporary, params), "SMPL export")


def _save_npz(path: Path, params: SmplParams) -> None:
    """np.savez of params in AMASS's layout (path ends in .npz, so numpy adds no suffix)."""
    np.savez(
        path,
        poses=np.pad(params.poses[:, :66], ((0, 0), (0, 90))).astype(np.float32),  # SMPL+H: 22 body + 30 hand joints
        trans=params.trans.astype(np.float32),
        betas=params.betas.astype(np.float32),
        mocap_framerate=np.float64(params.fps),
        gender=np.str_(params.gender),
    )


def read_smpl_npz(path) -> SmplParams:
    """SmplParams from an AMASS-layout .npz (no pickles): SMPL poses (T, 72), or SMPL+H's (T, 156), of which the 22
    body joints (the first 66 values; the rest are SMPL+H's 30 finger joints, left hand first, as in smplx's SMPLH,
    so SMPL's two hand joints stay at rest) and the first 10 betas (AMASS has 16: the first 10 are SMPL's shape
    space, the rest add detail SMPL has no basis for)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"SMPL parameter file not found: '{path}' (check the path).")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [key for key in ("poses", "trans", "mocap_framerate") if key not in data]
            if missing:
                raise UserError(f"'{path}' lacks {missing}; it is not an AMASS-layout SMPL parameter file.")
            poses, trans, fps = data["poses"], data["trans"], data["mocap_framerate"]
            betas = data["betas"] if "betas" in data else np.zeros(NUM_BETAS)
            gender = data["gender"].item() if "gender" in data else "neutral"
    except ValueError as error:
        raise UserError(f"'{path}' is not a plain-array .npz ({str(error).split('.')[0]}).") from None
    if poses.ndim != 2 or poses.shape[1] not in (72, 156) or trans.shape != (len(poses), 3):
        raise UserError(
            f"'{path}' has poses {poses.shape} and trans {trans.shape}; expected SMPL (T, 72) or SMPL+H (T, 156) "
            "poses and (T, 3) trans (SMPL-X's 165 pose values are another body model)."
        )
    if poses.shape[1] == 156:  # SMPL+H: the body, then fingers where SMPL has its two hand joints
        poses = np.concatenate([poses[:, :66], np.zeros((len(poses), 6))], axis=1)
    gender = gender.decode() if isinstance(gender, bytes) else gender
    return SmplParams(
        poses=poses.astype(np.float32),
        trans=trans.astype(np.float32),
        betas=first_betas(path, betas),
        fps=frame_rate(fps.item() if fps.size == 1 else fps),
        gender=gender if gender in GENDERS else "neutral",
    )


def first_betas(path, betas) -> np.ndarray:
    """The first NUM_BETAS of a file's betas, zero-padded when it has fewer; UserError unless they are one row."""
    betas = np.asarray(betas)
    if betas.dtype.kind not in "biuf" or np.squeeze(betas).ndim > 1:
        raise UserError(
            f"'{path}' has betas of shape {betas.shape} and dtype {betas.dtype}, not one row of shape coefficients; "
            "write them as (10,) or (1, 16) numbers."
        )
    betas = betas.ravel()[:NUM_BETAS].astype(np.float32)
    return np.pad(betas, (0, NUM_BETAS - len(betas)))

"""The SMPL body model (smplx.SMPL) from the official files, read without unpickling code.

SMPL is licensed (https://smpl.is.tue.mpg.de, registration needed) and never ships with motiondiff: the user
passes `smpl.model_path=<dir>`, a folder holding SMPL_NEUTRAL.pkl or .npz (SMPL_MALE, SMPL_FEMALE for the other
genders), directly or in a `smpl/` subfolder as smplx looks, or the official download's names
(basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl, ...); or the file itself. An .npz is read with allow_pickle=False,
a .pkl with `core.safe_pickle.load_model_pickle` (arrays, numbers, strings and scipy sparse matrices as data;
nothing else is built and no code runs); smplx.SMPL gets the arrays as its data_struct, so it never unpickles.
SMPL 1.0.0's pickles hold chumpy objects and are refused with the way out (the 1.1.0 files or an .npz).

Joints: SMPL's 24 are the 22 of SMPL22_NAMES, then left_hand and right_hand (children of the wrists).
"""

import contextlib
import io
from pathlib import Path

import numpy as np
import smplx
import torch

from motiondiff.core.errors import UserError
from motiondiff.core.safe_pickle import load_model_pickle
from motiondiff.data.kinematics.skeleton import SMPL22_NAMES, SMPL22_PARENTS

SMPL24_NAMES = SMPL22_NAMES + ("left_hand", "right_hand")
SMPL24_PARENTS = SMPL22_PARENTS + (20, 21)
NUM_VERTICES = 6890  # SMPL's mesh (smplx picks extra joints from vertices up to 6787)
NUM_POSE_BASIS = 207  # pose blend shapes: 23 joints x 9
GENDERS = {"neutral": "neutral", "male": "m", "female": "f"}  # gender -> the official download's letter
KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")
DOWNLOAD = (
    "download SMPL from https://smpl.is.tue.mpg.de (free registration; its licence keeps it out of motiondiff) "
    "and pass smpl.model_path=<dir> for a folder holding SMPL_NEUTRAL.pkl"
)


def candidate_names(gender: str) -> tuple:
    """File names of the model for `gender`, lower-cased, in the order they are preferred."""
    letter = GENDERS[gender]
    return (
        f"smpl_{gender}.npz",
        f"smpl_{gender}.pkl",
        f"basicmodel_{letter}_lbs_10_207_0_v1.1.0.pkl",
        f"basicmodel_{letter}_lbs_10_207_0_v1.0.0.pkl",  # chumpy: found so that its sentence is given
    )


def model_file(model_path, gender: str = "neutral") -> Path:
    """The SMPL file for `gender` at model_path (a file, or a folder searched as smplx does); UserError if none."""
    if gender not in GENDERS:
        raise UserError(f"SMPL gender '{gender}' is not one of {sorted(GENDERS)}; pass gender=neutral, male or female.")
    if model_path is None or str(model_path) == "":
        raise UserError(f"no SMPL body model was given: {DOWNLOAD}.")
    path = Path(model_path).expanduser()
    if path.is_file():
        return path
    for folder in (path, path / "smpl", path / "smpl" / "models", path / "models"):
        if folder.is_dir():
            files = {child.name.lower(): child for child in folder.iterdir() if child.is_file()}
            found = [files[name] for name in candidate_names(gender) if name in files]
            if found:
                return found[0]
    raise UserError(f"no SMPL {gender} model (SMPL_{gender.upper()}.pkl or .npz) found at '{path}': {DOWNLOAD}.")


def read_npz(path: Path) -> dict:
    """The model arrays (KEYS) of an .npz, without pickles."""
    arrays = {}
    try:
        with np.load(path, allow_pickle=False) as data:
            for key in KEYS:
                if key in data:
                    arrays[key] = data[key]
    except ValueError as error:  # an object array: numpy would need to unpickle it
        raise UserError(
            f"SMPL file '{path}' holds pickled objects ({str(error).split('.')[0]}); re-save it with plain arrays "
            "(J_regressor dense) or use the official .pkl."
        ) from None
    except (OSError, EOFError) as error:
        raise UserError(f"SMPL file '{path}' is not a readable .npz ({error}).") from None
    return arrays


def read_model_arrays(path) -> dict:
    """The SMPL arrays (KEYS) of an .npz or .pkl model file, checked against SMPL's layout."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        arrays = read_npz(path)
    else:
        chumpy = (
            f"SMPL file '{path}' is the chumpy version (SMPL 1.0.0, for Python 2), which motiondiff does not read: "
            "download the Python 3 files (SMPL 1.1.0) or use an .npz of the model."
        )
        arrays = load_model_pickle(path, "SMPL file", advice={"chumpy": chumpy})
    check_layout(path, arrays)
    return {key: np.asarray(arrays[key]) for key in KEYS}


def check_layout(path, arrays: dict) -> None:
    """UserError unless the arrays have SMPL's shapes and kinematic tree."""
    missing = [key for key in KEYS if key not in arrays]
    if missing:
        raise UserError(f"SMPL file '{path}' lacks {missing}; it is not an SMPL model: {DOWNLOAD}.")
    shapes = {key: np.shape(arrays[key]) for key in KEYS}
    joints, vertices = len(SMPL24_PARENTS), NUM_VERTICES
    expected = {
        "v_template": (vertices, 3),
        "J_regressor": (joints, vertices),
        "weights": (vertices, joints),
        "kintree_table": (2, joints),
    }
    wrong = [key for key, shape in expected.items() if shapes[key] != shape]
    wrong += [key for key in ("shapedirs", "posedirs") if shapes[key][:2] != (vertices, 3) or len(shapes[key]) != 3]
    wrong += ["posedirs"] if shapes["posedirs"][-1:] != (NUM_POSE_BASIS,) else []
    wrong += ["f"] if len(shapes["f"]) != 2 or shapes["f"][1] != 3 else []
    if wrong:
        found = ", ".join(f"{key} {shapes[key]}" for key in sorted(set(wrong)))
        raise UserError(
            f"SMPL file '{path}' has {found}, not SMPL's layout (24 joints, {vertices} vertices); SMPL-H and "
            f"SMPL-X files are other models: {DOWNLOAD}."
        )
    parents = tuple(int(p) for p in np.asarray(arrays["kintree_table"])[0, 1:])
    if parents != SMPL24_PARENTS[1:]:
        raise UserError(f"SMPL file '{path}' has the kinematic tree {parents}, not SMPL's; use the official file.")


def load_smpl(model_path, gender: str = "neutral", batch_size: int = 1) -> smplx.SMPL:
    """smplx.SMPL (float32, CPU, 10 betas) built from the model file's arrays, never unpickled by smplx."""
    path = model_file(model_path, gender)
    arrays = read_model_arrays(path)
    arrays["f"] = arrays["f"].astype(np.int64)
    struct = smplx.utils.Struct(**arrays)
    with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a warning about 10-beta models (SMPL's own)
        model = smplx.SMPL(str(path), data_struct=struct, gender=gender, batch_size=batch_size, num_betas=10)
    return model.eval()


def rest_joints(model: smplx.SMPL) -> np.ndarray:
    """The model's rest joints (24, 3) float64 for betas 0: J_regressor @ v_template (y up, facing +z)."""
    regressor = model.J_regressor.detach().double().numpy()  # (24, V)
    return regressor @ model.v_template.detach().double().numpy()  # (24, 3)


@torch.no_grad()
def pose_smpl(model: smplx.SMPL, poses: np.ndarray, trans: np.ndarray, betas=None, batch: int = 64) -> tuple:
    """(vertices (T, V, 3), joints (T, 24, 3)) float32 of the model posed by poses (T, 72) axis-angle, trans (T, 3)."""
    poses = torch.as_tensor(np.asarray(poses, dtype=np.float32))
    trans = torch.as_tensor(np.asarray(trans, dtype=np.float32))
    betas = torch.zeros(1, model.num_betas) if betas is None else torch.as_tensor(np.asarray(betas, np.float32))[None]
    vertices, joints = [], []
    for start in range(0, len(poses), batch):
        chunk = slice(start, start + batch)
        out = model(betas=betas, global_orient=poses[chunk, :3], body_pose=poses[chunk, 3:], transl=trans[chunk])
        vertices.append(out.vertices.numpy())
        joints.append(out.joints[:, : len(SMPL24_PARENTS)].numpy())
    return np.concatenate(vertices), np.concatenate(joints)

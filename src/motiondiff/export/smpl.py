"""Joint positions -> SMPL parameters (an AMASS-layout .npz) and a shaded SMPL mesh video.

Both need the SMPL body model (`data.formats.smpl_model`: licensed, the user's `smpl.model_path`): its rest
skeleton defines what the poses mean, and its mesh is what the video shows. Positions are (T, 22, 3) on the
SMPL 22-joint tree, metres, y up, facing +z (HumanML3D's joints). A motion's parameters are solved once
(`solve`); the file holds them and the video poses the body with smplx (float32, CPU, in batches) from the
same parameters, so it shows what the file holds.
"""

from pathlib import Path
from typing import Optional

import smplx

from motiondiff.data.formats.smpl_model import pose_smpl, rest_joints
from motiondiff.data.formats.smpl_params import HUMANML3D_FROM_AMASS, SmplParams, joints_to_smpl
from motiondiff.render.mesh import render_mesh_video, write_obj_sequence


def solve(positions, fps: float, model: smplx.SMPL, up: str = "z", gender: str = "neutral") -> SmplParams:
    """SMPL parameters of positions (T, 22, 3) on `model`'s rest skeleton, in the z-up (AMASS) or y-up frame."""
    return joints_to_smpl(positions, fps, rest_joints(model), up=up, gender=gender)


def posed_vertices(model: smplx.SMPL, params: SmplParams, up: str):
    """Vertices (T, 6890, 3) float32 of the model posed by params (written with `up`), in our y-up frame."""
    vertices, _ = pose_smpl(model, params.poses, params.trans, params.betas)
    return vertices @ HUMANML3D_FROM_AMASS.T.astype(vertices.dtype) if up == "z" else vertices


def render_mesh(
    model: smplx.SMPL, params: SmplParams, up: str, out_path, caption: str = "", obj_folder: Optional[Path] = None
) -> Path:
    """An mp4 of the SMPL mesh posed by params; also one .obj per frame in obj_folder when given."""
    vertices = posed_vertices(model, params, up)
    faces = model.faces.astype("int64")
    if obj_folder is not None:
        write_obj_sequence(obj_folder, vertices, faces)
    return render_mesh_video(vertices, faces, out_path, params.fps, caption)

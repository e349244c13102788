"""2D keypoint sequences saved with np.save: (frames, joints, 2), read without unpickling anything."""

import numpy as np

from motiondiff.core.errors import UserError, first_sentence, require_file
from motiondiff.data.kinematics.skeleton import BODY20_NAMES, BODY20_PARENTS


def load_keypoints_npy(path: str, parents=None) -> tuple:
    """(keypoints (frames, joints, 2) float32, joint names, parents) from a .npy file; skeleton: `parents` or BODY20."""
    require_file(path, "keypoint file (dataset.source)")
    try:
        keypoints = np.load(path, allow_pickle=False)
    except (ValueError, EOFError) as error:  # EOFError: an empty file
        reason = first_sentence(error)
        raise UserError(f"'{path}' is not a plain numeric .npy array ({reason}); save it with np.save.") from None
    if not isinstance(keypoints, np.ndarray):  # an .npz archive under a .npy name
        keypoints.close()
        raise UserError(f"'{path}' is an .npz archive, not a .npy array; save the keypoints alone with np.save.")
    if keypoints.ndim != 3 or keypoints.shape[-1] != 2 or keypoints.dtype.kind not in "iuf":
        raise UserError(
            f"'{path}' holds an array of shape {keypoints.shape} and dtype {keypoints.dtype}; "
            "expected numbers of shape (frames, joints, 2)."
        )
    if not np.isfinite(keypoints).all():
        raise UserError(f"'{path}' contains NaN or infinite values; clean or interpolate them first.")
    joints = keypoints.shape[1]
    if parents is None:
        if joints != len(BODY20_PARENTS):
            raise UserError(
                f"'{path}' has {joints} joints; give the skeleton as dataset.parents=[-1,0,...] "
                f"({joints} parent indices) or use the {len(BODY20_PARENTS)}-joint body layout."
            )
        names, parents = BODY20_NAMES, BODY20_PARENTS
    else:
        parents = tuple(int(p) for p in parents)
        if len(parents) != joints or any(not -1 <= p < j for j, p in enumerate(parents)):
            raise UserError(
                f"dataset.parents has {len(parents)} entries for {joints} joints in '{path}'; give one parent "
                "index per joint, each smaller than its own index (-1 for the root)."
            )
        names = tuple(f"joint{j}" for j in range(joints))
    return keypoints.astype(np.float32), names, parents

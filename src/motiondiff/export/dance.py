"""A 3D single dance's features -> a BVH file on the source clip's own skeleton (names, offsets, channels)."""

from pathlib import Path

import numpy as np

from motiondiff.data.formats.bvh_write import write_bvh
from motiondiff.data.info import RotationDanceData
from motiondiff.data.kinematics.skeleton import Skeleton


def write_dance_bvh(path: Path, info: RotationDanceData, raw: np.ndarray) -> Path:
    """Write denormalised features (T, F) as a new BVH with the source's hierarchy, opening where the source opened."""
    local_rotations, root_path, _ = info.decode(np.asarray(raw, dtype=np.float64))  # (T, J, 3, 3), (T, 3)
    names = tuple(name.split(":")[-1] for name in info.file_names)
    skeleton = Skeleton(names, tuple(info.file_parents), np.asarray(info.offsets, dtype=np.float64))
    return write_bvh(
        path,
        skeleton,
        local_rotations,
        root_path,
        info.fps,
        names=info.file_names,
        channels=info.channels,
        end_sites=info.end_sites,
    )

"""Convert one BVH clip into the HumanML3D layout:
`python -m motiondiff.convert_bvh bvh=path/to/clip.bvh caption="a person walks in a circle" [out_root=...]`."""

import logging

from omegaconf import DictConfig

from motiondiff.cli import hydra_entry_point
from motiondiff.data.bvh_to_humanml3d import ConvertedMotion, convert_bvh_to_humanml3d
from motiondiff.errors import UserError

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> ConvertedMotion:
    """Write new_joint_vecs/, new_joints/ and texts/ entries for `cfg.bvh` under `cfg.out_root`."""
    if not cfg.bvh:
        raise UserError("No BVH file given; set bvh=path/to/clip.bvh.")
    motion = convert_bvh_to_humanml3d(
        cfg.bvh,
        cfg.out_root,
        cfg.caption,
        motion_id=cfg.motion_id,
        joint_map=cfg.joint_map,
        scale=cfg.scale,
        retarget=cfg.retarget,
        feet_threshold=cfg.feet_threshold,
    )
    log.info("Features: %s (%d frames)", motion.features_path, motion.frames)
    return motion


main = hydra_entry_point("convert_bvh", run)

if __name__ == "__main__":
    main()

"""`motiondiff-convert-bvh` / `-m motiondiff.convert_bvh`: convert_bvh.yaml, then data.formats.bvh_to_humanml3d.run."""

from motiondiff.cli.app import hydra_entry_point
from motiondiff.data.formats.bvh_to_humanml3d import run

main = hydra_entry_point("convert_bvh", run)

if __name__ == "__main__":
    main()

"""`motiondiff-convert-bvh` / `-m motiondiff.convert_bvh`: convert_bvh.yaml, then data.formats.bvh_to_humanml3d.run."""

from motiondiff.cli.app import hydra_entry_point

main = hydra_entry_point("convert_bvh", "motiondiff.data.formats.bvh_to_humanml3d.run")

if __name__ == "__main__":
    main()

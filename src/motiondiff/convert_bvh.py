"""`python -m motiondiff.convert_bvh`: the same command as `motiondiff-convert-bvh` (motiondiff.cli.convert_bvh)."""

from motiondiff.cli.convert_bvh import main

if __name__ == "__main__":
    main()

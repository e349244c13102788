"""`python -m motiondiff.compare`: the same command as `motiondiff-compare` (motiondiff.cli.compare)."""

from motiondiff.cli.compare import main

if __name__ == "__main__":
    main()

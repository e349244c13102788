"""`python -m motiondiff.train`: the same command as `motiondiff-train` (motiondiff.cli.train)."""

from motiondiff.cli.train import main

if __name__ == "__main__":
    main()

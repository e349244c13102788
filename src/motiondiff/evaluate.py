"""`python -m motiondiff.evaluate`: the same command as `motiondiff-evaluate` (motiondiff.cli.evaluate)."""

from motiondiff.cli.evaluate import main

if __name__ == "__main__":
    main()

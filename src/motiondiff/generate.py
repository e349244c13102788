"""`python -m motiondiff.generate`: the same command as `motiondiff-generate` (motiondiff.cli.generate)."""

from motiondiff.cli.generate import main

if __name__ == "__main__":
    main()

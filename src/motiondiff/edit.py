"""`python -m motiondiff.edit`: the same command as `motiondiff-edit` (motiondiff.cli.edit)."""

from motiondiff.cli.edit import main

if __name__ == "__main__":
    main()

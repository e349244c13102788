"""`python -m motiondiff.export`: the same command as `motiondiff-export` (motiondiff.cli.export)."""

from motiondiff.cli.export import main

main()

"""`python -m motiondiff.app`: the same command as `motiondiff-app` (motiondiff.cli.serve)."""

from motiondiff.cli.serve import main

main()

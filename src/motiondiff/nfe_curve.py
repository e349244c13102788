"""`python -m motiondiff.nfe_curve`: the same command as `motiondiff-nfe-curve` (motiondiff.cli.nfe_curve)."""

from motiondiff.cli.nfe_curve import main

if __name__ == "__main__":
    main()

"""`python -m motiondiff.sweep_demo`: the same command as `motiondiff-sweep-demo` (motiondiff.cli.sweep_demo)."""

from motiondiff.cli.sweep_demo import main

if __name__ == "__main__":
    main()

"""`python -m motiondiff.eval_demo`: the same command as `motiondiff-eval-demo` (motiondiff.cli.eval_demo)."""

from motiondiff.cli.eval_demo import main

if __name__ == "__main__":
    main()
